ALTER TABLE `history_runs` ADD `boot_id` text;--> statement-breakpoint
ALTER TABLE `history_runs` ADD `pid_start` text;
ALTER TABLE `history_runs` ADD `log` text DEFAULT '' NOT NULL;--> statement-breakpoint
ALTER TABLE `history_runs` ADD `log_size` integer DEFAULT 0 NOT NULL;
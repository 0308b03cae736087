CREATE TABLE `schedule_runs` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`schedule` text NOT NULL,
	`trigger` text NOT NULL,
	`due_at` integer,
	`started_at` integer NOT NULL,
	`ended_at` integer,
	`status` text NOT NULL,
	`exit_code` integer,
	`run_id` text,
	`message` text DEFAULT '' NOT NULL,
	`pid` integer,
	`host` text,
	`boot_id` text,
	`pid_start` text,
	`child_pid` integer,
	`child_start` text
);
--> statement-breakpoint
CREATE INDEX `schedule_runs_schedule` ON `schedule_runs` (`schedule`,`id`);--> statement-breakpoint
CREATE TABLE `scheduler_lock` (
	`id` integer PRIMARY KEY NOT NULL,
	`token` text NOT NULL,
	`pid` integer NOT NULL,
	`host` text NOT NULL,
	`boot_id` text,
	`pid_start` text,
	`started_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `schedules` (
	`name` text PRIMARY KEY NOT NULL,
	`cron` text NOT NULL,
	`timezone` text,
	`spec` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`enabled` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);

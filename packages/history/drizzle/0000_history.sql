CREATE TABLE `history_tasks` (
	`run_id` text NOT NULL,
	`name` text NOT NULL,
	`position` integer NOT NULL,
	`status` text NOT NULL,
	`attempts` integer NOT NULL,
	`started_at` integer,
	`ended_at` integer,
	`duration_ms` integer,
	`message` text,
	`output` text,
	`reused` integer NOT NULL,
	`log` text NOT NULL,
	`log_size` integer NOT NULL,
	PRIMARY KEY(`run_id`, `name`),
	FOREIGN KEY (`run_id`) REFERENCES `history_runs`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `history_runs` (
	`id` text PRIMARY KEY NOT NULL,
	`workflow` text NOT NULL,
	`file` text,
	`file_hash` text,
	`values` text NOT NULL,
	`params` text NOT NULL,
	`status` text NOT NULL,
	`message` text,
	`started_at` integer NOT NULL,
	`ended_at` integer,
	`duration_ms` integer,
	`pid` integer NOT NULL,
	`host` text NOT NULL,
	`resumed_from` text
);
--> statement-breakpoint
CREATE INDEX `history_runs_started` ON `history_runs` (`started_at`);--> statement-breakpoint
CREATE INDEX `history_runs_workflow` ON `history_runs` (`workflow`,`started_at`);
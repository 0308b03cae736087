CREATE TABLE `stack_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`stack` text NOT NULL,
	`type` text NOT NULL,
	`severity` text NOT NULL,
	`message` text NOT NULL,
	`source` text NOT NULL,
	`data` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `stack_events_stack` ON `stack_events` (`stack`,`id`);--> statement-breakpoint
CREATE TABLE `stack_locks` (
	`stack_id` integer PRIMARY KEY NOT NULL,
	`lock_id` text NOT NULL,
	`locked_by` text NOT NULL,
	`operation` text NOT NULL,
	`reason` text NOT NULL,
	`metadata` text NOT NULL,
	`locked_at` integer NOT NULL,
	`expires_at` integer,
	`host` text NOT NULL,
	`pid` integer NOT NULL,
	`boot_id` text,
	`pid_start` text,
	FOREIGN KEY (`stack_id`) REFERENCES `stacks`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `stack_resources` (
	`stack_id` integer NOT NULL,
	`name` text NOT NULL,
	`type` text NOT NULL,
	`desired` text NOT NULL,
	`check` text,
	`fix` text,
	`depends_on` text NOT NULL,
	`actual` text,
	`drift` text,
	`checked_at` integer,
	PRIMARY KEY(`stack_id`, `name`),
	FOREIGN KEY (`stack_id`) REFERENCES `stacks`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `stack_versions` (
	`stack_id` integer NOT NULL,
	`version` integer NOT NULL,
	`creator` text NOT NULL,
	`description` text NOT NULL,
	`content` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`stack_id`, `version`),
	FOREIGN KEY (`stack_id`) REFERENCES `stacks`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE TABLE `stacks` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`name` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`status` text NOT NULL,
	`state` text NOT NULL,
	`depends_on` text NOT NULL,
	`last_version` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`last_execution_at` integer,
	`execution_count` integer NOT NULL,
	`last_run_id` text
);
--> statement-breakpoint
CREATE UNIQUE INDEX `stacks_name_unique` ON `stacks` (`name`);
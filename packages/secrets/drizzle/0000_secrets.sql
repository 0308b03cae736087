CREATE TABLE `secret_audit` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` integer NOT NULL,
	`action` text NOT NULL,
	`env` text,
	`name` text,
	`version` integer,
	`actor` text NOT NULL,
	`pid` integer NOT NULL,
	`detail` text DEFAULT '' NOT NULL
);
--> statement-breakpoint
CREATE INDEX `secret_audit_name` ON `secret_audit` (`env`,`name`,`id`);--> statement-breakpoint
CREATE TABLE `secret_key_check` (
	`id` integer PRIMARY KEY NOT NULL,
	`key_id` text NOT NULL,
	`salt` blob NOT NULL,
	`nonce` blob NOT NULL,
	`sealed` blob NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE TABLE `secret_versions` (
	`env` text NOT NULL,
	`name` text NOT NULL,
	`version` integer NOT NULL,
	`nonce` blob NOT NULL,
	`sealed` blob NOT NULL,
	`created_at` integer NOT NULL,
	`created_by` text NOT NULL,
	PRIMARY KEY(`env`, `name`, `version`)
);

CREATE TABLE `agents` (
	`name` text PRIMARY KEY NOT NULL,
	`address` text NOT NULL,
	`report_address` text DEFAULT '' NOT NULL,
	`bind_address` text DEFAULT '' NOT NULL,
	`port` integer NOT NULL,
	`version` text DEFAULT '' NOT NULL,
	`labels` text DEFAULT '{}' NOT NULL,
	`facts` text DEFAULT '{}' NOT NULL,
	`secret_hash` text NOT NULL,
	`status` text NOT NULL,
	`status_reason` text DEFAULT '' NOT NULL,
	`last_seen` integer NOT NULL,
	`registered_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);

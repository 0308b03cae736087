CREATE TABLE `state_entries` (
	`namespace` text NOT NULL,
	`key` text NOT NULL,
	`value` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`expires_at` integer,
	PRIMARY KEY(`namespace`, `key`)
);
--> statement-breakpoint
CREATE TABLE `state_fences` (
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`token` integer NOT NULL,
	PRIMARY KEY(`namespace`, `name`)
);
--> statement-breakpoint
CREATE TABLE `state_locks` (
	`namespace` text NOT NULL,
	`name` text NOT NULL,
	`owner` text NOT NULL,
	`token` integer NOT NULL,
	`acquired_at` integer NOT NULL,
	`expires_at` integer NOT NULL,
	PRIMARY KEY(`namespace`, `name`)
);

CREATE TABLE `masters` (
	`name` text PRIMARY KEY NOT NULL,
	`address` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`is_default` integer DEFAULT false NOT NULL,
	`token_file` text,
	`tls_cert` text,
	`tls_key` text,
	`tls_ca` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);

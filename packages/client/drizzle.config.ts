import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./src/masters/schema.ts",
  out: "./drizzle",
});

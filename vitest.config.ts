import { defineConfig } from "vitest/config";

// Tests import workspace packages through their "source" export condition, so
// unit tests run against src/ without a build. End-to-end tests spawn the
// built binaries and need `pnpm build` first (which `pnpm test` does).
export default defineConfig({
  resolve: { conditions: ["source"] },
  ssr: { resolve: { conditions: ["source"] } },
  test: {
    reporters: ["default", "json"],
    outputFile: { json: ".vitest-report.json" },
    projects: [
      {
        extends: true,
        test: {
          name: "unit",
          include: ["packages/*/src/**/*.test.ts", "apps/*/src/**/*.test.ts"],
          testTimeout: 30_000,
          hookTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: "e2e",
          include: ["tooling/e2e/src/**/*.test.ts"],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      ...(process.env.SLOTH_STRESS
        ? [
            {
              extends: true,
              test: {
                name: "stress",
                include: ["packages/*/stress/**/*.test.ts"],
                testTimeout: 600_000,
              },
            },
          ]
        : []),
    ],
  },
});

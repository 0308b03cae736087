import type { MessageInitShape } from "@bufbuild/protobuf";
import { type CommandEventSchema, OutputStream } from "@sloth/proto";
import type { CommandEvent } from "./run-command.js";

export type EventInit = MessageInitShape<typeof CommandEventSchema>;

/** A command event as it goes on the wire. */
export function toWire(event: CommandEvent): EventInit {
  switch (event.type) {
    case "started":
      return { event: { case: "started", value: { pid: event.pid } } };
    case "output":
      return {
        event: {
          case: "output",
          value: {
            stream: event.stream === "stdout" ? OutputStream.STDOUT : OutputStream.STDERR,
            data: event.data,
          },
        },
      };
    case "exit":
      return {
        event: {
          case: "exit",
          value: {
            exitCode: event.exitCode,
            signal: event.signal,
            signalNumber: event.signalNumber,
            durationMs: BigInt(event.durationMs),
            timedOut: event.timedOut,
            startError: event.startError,
          },
        },
      };
  }
}

import { ConnectError } from "@connectrpc/connect";
import { fromConnectError, type SlothError } from "@sloth/client";
import { StateErrorDetailSchema } from "@sloth/proto";
import { StateError, type StateErrorCode } from "../errors.js";

// Detail fields that were Dates before they crossed the wire as JSON.
const DATE_FIELDS = ["expiresAt", "acquiredAt"];

function parseDetails(json: string): Record<string, unknown> {
  if (!json) return {};
  try {
    const details = JSON.parse(json) as Record<string, unknown>;
    for (const f of DATE_FIELDS) {
      const v = details[f];
      if (typeof v === "string") details[f] = new Date(v);
    }
    return details;
  } catch {
    return {};
  }
}

/**
 * The client side of the state error mapping (the master's StateService is
 * the other side): a failure the store reported comes back as a StateError
 * with its code, details, hint and retryability; a transport failure
 * (unreachable master, bad token, deadline) as the SlothError that
 * `@sloth/client` makes of it, naming the master.
 */
export function stateErrorFromWire(e: unknown, address: string): StateError | SlothError {
  if (e instanceof StateError) return e;
  const ce = ConnectError.from(e);
  const [detail] = ce.findDetails(StateErrorDetailSchema);
  if (detail) {
    return new StateError(detail.code as StateErrorCode, ce.rawMessage, {
      cause: e,
      hint: detail.hint || undefined,
      details: parseDetails(detail.detailsJson),
      retryable: detail.retryable,
    });
  }
  return fromConnectError(e, { kind: "master", address });
}

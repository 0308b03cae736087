import type { TaskOutput } from "./model.js";

/** Fields every event carries. */
interface EventBase {
  runId: string;
  /** Epoch milliseconds. */
  time: number;
}

/** How a run ended. */
export type RunStatus = "succeeded" | "failed" | "aborted" | "interrupted";

/** Every state transition of a run, in the order it happened. */
export type RunEvent =
  | (EventBase & { type: "workflow.started"; workflow: string; tasks: string[] })
  | (EventBase & { type: "workflow.completed"; workflow: string; durationMs: number })
  | (EventBase & { type: "workflow.failed"; workflow: string; durationMs: number; message: string })
  | (EventBase & {
      type: "workflow.aborted";
      workflow: string;
      durationMs: number;
      message: string;
      /** The task whose abort_if fired. */
      task: string;
    })
  | (EventBase & {
      type: "workflow.interrupted";
      workflow: string;
      durationMs: number;
      message: string;
    })
  | (EventBase & { type: "task.started"; task: string; attempt: number })
  | (EventBase & {
      type: "task.succeeded";
      task: string;
      attempts: number;
      durationMs: number;
      message?: string | undefined;
      output?: TaskOutput | undefined;
      /** The agents its last attempt ran on (absent when it ran here). */
      agents?: string[] | undefined;
    })
  | (EventBase & {
      type: "task.failed";
      task: string;
      attempts: number;
      durationMs: number;
      message: string;
      output?: TaskOutput | undefined;
      /** The agents its last attempt ran on (absent when it ran here). */
      agents?: string[] | undefined;
    })
  | (EventBase & { type: "task.skipped"; task: string; reason: string })
  | (EventBase & {
      type: "task.retrying";
      task: string;
      /** The attempt about to start (2 for the first retry). */
      attempt: number;
      delayMs: number;
      message: string;
    })
  | (EventBase & { type: "task.timed_out"; task: string; attempt: number; timeoutMs: number })
  | (EventBase & { type: "task.cancelled"; task: string; reason: string; durationMs: number })
  | (EventBase & {
      type: "task.log";
      task: string;
      stream: "stdout" | "stderr" | "log";
      text: string;
    })
  | (EventBase & {
      /** Output of the workflow's own hooks (on_start, on_task_start, ...). */
      type: "workflow.log";
      workflow: string;
      stream: "stdout" | "stderr" | "log";
      text: string;
    });

/** The `type` of a {@link RunEvent}. */
export type RunEventType = RunEvent["type"];

/** Distributes events to listeners and to any number of async iterators. */
export class EventChannel {
  readonly #subscribers = new Set<Subscriber>();
  readonly #listeners: Array<(event: RunEvent) => void> = [];
  #closed = false;

  /** Called when a listener throws; the run goes on regardless. */
  onListenerError: ((err: unknown, event: RunEvent) => void) | undefined;

  /** Adds a synchronous listener. */
  listen(listener: (event: RunEvent) => void): void {
    this.#listeners.push(listener);
  }

  /** Delivers one event to every listener and iterator. */
  emit(event: RunEvent): void {
    if (this.#closed) return;
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch (err) {
        // A broken display or recorder must not wedge the scheduler.
        this.onListenerError?.(err, event);
      }
    }
    for (const sub of this.#subscribers) sub.push(event);
  }

  /** Ends every iterator once it has drained. */
  close(): void {
    this.#closed = true;
    for (const sub of this.#subscribers) sub.end();
    this.#subscribers.clear();
  }

  /** An iterator over the events emitted from now on. */
  subscribe(): AsyncIterableIterator<RunEvent> {
    const sub = new Subscriber(() => this.#subscribers.delete(sub));
    if (this.#closed) sub.end();
    else this.#subscribers.add(sub);
    return sub;
  }
}

/** One iterator's queue: unbounded, because dropping events would lie. */
class Subscriber implements AsyncIterableIterator<RunEvent> {
  readonly #queue: RunEvent[] = [];
  #waiting: ((r: IteratorResult<RunEvent>) => void) | undefined;
  #ended = false;
  readonly #detach: () => void;

  constructor(detach: () => void) {
    this.#detach = detach;
  }

  push(event: RunEvent): void {
    if (this.#waiting) {
      const resolve = this.#waiting;
      this.#waiting = undefined;
      resolve({ value: event, done: false });
    } else this.#queue.push(event);
  }

  end(): void {
    this.#ended = true;
    if (this.#waiting) {
      const resolve = this.#waiting;
      this.#waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<RunEvent>> {
    const event = this.#queue.shift();
    if (event) return Promise.resolve({ value: event, done: false });
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.#waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<RunEvent>> {
    this.#queue.length = 0;
    this.#ended = true;
    this.#detach();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<RunEvent> {
    return this;
  }
}

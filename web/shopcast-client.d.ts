// Types of shopcast-client.js (the browser client of Shopcast's /ws). The
// protocol behind them is in docs/DESIGN.md ("WebSocket protocol"); every
// option is described in web/README.md.

/** A shop, product, order or user id: a JSON integer or a string. `7` and `"7"` name one shop. */
export type Id = number | string;

interface EventBase {
    /** The event's cursor: opaque, ordered; `client.lastId` after this event. */
    id: string;
    /** Present on private events: only that user's authenticated pages get them. */
    userId?: Id;
    /** Fields the bot added pass through unchanged. */
    [field: string]: unknown;
}

export interface ProductEvent extends EventBase {
    type: 'product_added' | 'product_updated' | 'product_deleted';
    shopId: Id;
    productId: Id;
}

export interface OrderStatusEvent extends EventBase {
    type: 'order_status';
    orderId: Id;
    status: string;
    shopId?: Id;
}

export interface NewSubscriberEvent extends EventBase {
    type: 'new_subscriber';
    shopId: Id;
}

export interface ShopUpdatedEvent extends EventBase {
    type: 'shop_updated';
    shopId: Id;
}

/** Every event the server delivers; `switch (event.type)` narrows it. */
export type ShopcastEvent = ProductEvent | OrderStatusEvent | NewSubscriberEvent | ShopUpdatedEvent;

/** The events `coalesce` batches (when they carry no userId). */
export type CoalescedEvent = ProductEvent | ShopUpdatedEvent;

export interface Batch {
    /** The first batched event's shopId. */
    shopId: Id;
    /** In publish order; at least one. */
    events: CoalescedEvent[];
}

export type Status = 'connecting' | 'connected' | 'disconnected';

/** The server's answers to the client's actions, passed to onControl. */
export type ControlMessage =
    | { type: 'auth_ok'; userId: number }
    | { type: 'error'; message: string }
    | { type: 'subscribed'; shops: Id[] };

export interface BackoffOptions {
    /** First reconnect waits up to this long (ms); default 500. */
    baseMs?: number;
    /** Cap of the doubling (ms); default 30000. */
    maxMs?: number;
}

/** What the client needs of a WebSocket class: the browser's, or `ws`'s in Node. */
export interface WebSocketLike {
    readonly readyState: number;
    send(data: string): void;
    close(code?: number): void;
    onopen: ((event: any) => void) | null;
    onmessage: ((event: any) => void) | null;
    onerror: ((event: any) => void) | null;
    onclose: ((event: any) => void) | null;
}

export interface ConnectOptions {
    /** `wss://host/ws`. */
    url: string;
    /** `Telegram.WebApp.initData`, sent as an `auth` message after each connect (never in the URL). */
    initData?: string | null;
    /** Initial shop subscriptions; none means every public event. */
    shops?: Id[];
    /** Every event not batched, in publish order, once. */
    onEvent?: (event: ShopcastEvent) => void;
    onStatus?: (status: Status) => void;
    /** Missed events could not be replayed: refetch. */
    onResync?: (reason: string) => void;
    /**
     * The server refused initData (stale `auth_date`, a bad hash or signature,
     * auth not configured): the connection stays open but anonymous, so
     * private events do not arrive. `message` is the server's reason.
     */
    onAuthError?: (message: string) => void;
    onControl?: (message: ControlMessage) => void;
    /** Batch refetch-style events per shop: `true` (250 ms) or `{ windowMs }`; needs onBatch. */
    coalesce?: boolean | { windowMs?: number };
    onBatch?: (batch: Batch) => void;
    /** Console logging and the 🟢/🔴 indicator. */
    dev?: boolean;
    WebSocketImpl?: new (url: string) => WebSocketLike;
    backoff?: BackoffOptions;
    /** After a 1001/1012 close the first reconnect waits a random part of this (ms); default 5000. */
    restartSpreadMs?: number;
    /** Injectable for tests. */
    random?: () => number;
    now?: () => number;
}

export interface ShopcastClient {
    /** Adds shops to the subscription set (kept across reconnects). */
    subscribe(shops: Id[]): void;
    /** Removes shops; an empty set means every public event again. */
    unsubscribe(shops: Id[]): void;
    /** For good: no reconnects, no listeners left, waiting batches dropped. */
    close(): void;
    /** Cursor of the last event seen (or of hello before any). */
    readonly lastId: string | null;
    readonly connected: boolean;
}

export function connect(options: ConnectOptions): ShopcastClient;

/** Reconnect delay for attempt `attempt` (0-based): uniform in [0, min(maxMs, baseMs·2^attempt)]. */
export function backoffDelay(attempt: number, options?: BackoffOptions, random?: () => number): number;

/** First reconnect delay after a server restart: uniform in [0, spreadMs]. */
export function restartDelay(spreadMs?: number, random?: () => number): number;

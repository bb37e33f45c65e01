// Demo page: a small shop view kept live by the Shopcast client.
// A real WebApp refetches from its backend on each event; this page has no
// backend, so "refetch" means: update the in-page state from the event and
// render again. Every value from an event is shown with textContent only.

import { connect } from './shopcast-client.js';

const LOG_LIMIT = 50;

const state = {
    shops: new Map([
        ['123', { id: 123, name: 'Green Corner', subscribers: 41, products: [455, 457], note: '' }],
        ['7', { id: 7, name: 'Bread & Co', subscribers: 8, products: [11, 12, 13], note: '' }],
    ]),
    orders: new Map([['1001', { id: 1001, status: 'pending' }]]),
    log: [],
    renders: 0,
    refetches: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
        if (key === 'testid') node.dataset.testid = value;
        else if (key === 'className') node.className = value;
        else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
}

function shopFor(shopId) {
    const key = String(shopId);
    if (!state.shops.has(key)) {
        state.shops.set(key, { id: shopId, name: `Shop ${key}`, subscribers: 0, products: [], note: '' });
    }
    return state.shops.get(key);
}

function hasProduct(shop, productId) {
    return shop.products.some((p) => String(p) === String(productId));
}

// The seed guide's table: what each event type does to the page.
const handlers = {
    product_added(e) {
        const shop = shopFor(e.shopId);
        if (!hasProduct(shop, e.productId)) shop.products.push(e.productId);
        shop.note = `product ${e.productId} added`;
    },
    product_updated(e) {
        const shop = shopFor(e.shopId);
        if (!hasProduct(shop, e.productId)) shop.products.push(e.productId);
        shop.note = `product ${e.productId} updated`;
    },
    product_deleted(e) {
        const shop = shopFor(e.shopId);
        shop.products = shop.products.filter((p) => String(p) !== String(e.productId));
        shop.note = `product ${e.productId} removed`;
    },
    order_status(e) {
        const key = String(e.orderId);
        const order = state.orders.get(key) ?? { id: e.orderId, status: '' };
        order.status = String(e.status);
        state.orders.set(key, order);
    },
    new_subscriber(e) {
        const shop = shopFor(e.shopId);
        shop.subscribers += 1;
        shop.note = 'new subscriber';
    },
    shop_updated(e) {
        const shop = shopFor(e.shopId);
        if (typeof e.name === 'string' && e.name) shop.name = e.name;
        shop.note = `shop refetched at ${new Date().toLocaleTimeString()}`;
    },
};

function describe(e) {
    const parts = [];
    if (e.shopId != null) parts.push(`shop ${e.shopId}`);
    if (e.productId != null) parts.push(`product ${e.productId}`);
    if (e.orderId != null) parts.push(`order ${e.orderId}`);
    if (e.status != null) parts.push(`→ ${e.status}`);
    return parts.join(' · ');
}

function render() {
    state.renders += 1;

    const shops = [...state.shops.values()].map((shop) => {
        const key = String(shop.id);
        const products = shop.products.length
            ? shop.products.map((p) => el('li', { className: 'chip', testid: `product-${key}-${p}` }, `#${p}`))
            : [el('li', { className: 'muted' }, 'no products')];
        return el('article', { className: 'card', testid: `shop-${key}`, 'data-shop-id': key },
            el('div', { className: 'card-head' },
                el('h3', { testid: `shop-${key}-name` }, shop.name),
                el('span', { className: 'muted' }, `#${key}`)),
            el('p', { className: 'subscribers' },
                el('strong', { testid: `shop-${key}-subscribers` }, String(shop.subscribers)),
                ' subscribers'),
            el('ul', { className: 'chips', testid: `shop-${key}-products` }, ...products),
            el('p', { className: 'note muted', testid: `shop-${key}-note` }, shop.note));
    });
    $('shops').replaceChildren(...shops);

    const orders = [...state.orders.values()].map((order) =>
        el('li', { className: 'order', testid: `order-${order.id}` },
            el('span', {}, `Order #${order.id}`),
            el('span', { className: `status status-${String(order.status).replace(/[^a-z_-]/gi, '')}`,
                testid: `order-${order.id}-status` }, order.status)));
    $('orders').replaceChildren(...orders);

    const entries = state.log.map((e) =>
        el('li', { testid: 'event-log-entry', 'data-id': String(e.id), 'data-type': e.type },
            el('code', { className: 'type' }, e.type),
            el('span', {}, describe(e)),
            el('span', { className: 'muted id' }, String(e.id))));
    $('event-log').replaceChildren(...entries);
    $('event-log-empty').hidden = state.log.length > 0;
    $('render-count').textContent = String(state.renders);
}

function record(event) {
    handlers[event.type]?.(event);
    state.log.unshift(event);
    state.log.length = Math.min(state.log.length, LOG_LIMIT);
}

function onEvent(event) {
    record(event);
    render();
    $('ws-cursor').textContent = String(client.lastId ?? '–');
}

// A burst of product and shop updates for one shop: a real page refetches
// that shop once here, however many events the burst held.
function onBatch({ shopId, events }) {
    for (const event of events) record(event);
    state.refetches += 1;
    $('refetch-count').textContent = String(state.refetches);
    shopFor(shopId).note += events.length > 1 ? ` (${events.length} updates, one refetch)` : '';
    render();
    $('ws-cursor').textContent = String(client.lastId ?? '–');
}

function onResync(reason) {
    // A real page refetches shops, products and orders from its backend here.
    const banner = $('resync-banner');
    banner.hidden = false;
    banner.dataset.at = new Date().toISOString();
    $('resync-reason').textContent = reason ? `(${reason})` : '';
    render();
}

function onStatus(status) {
    $('ws-status').textContent = status;
    document.body.dataset.wsStatus = status;
}

function socketUrl() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}/ws`;
}

function shopsFromQuery() {
    const value = new URLSearchParams(location.search).get('shops');
    if (!value) return [];
    return value.split(',').map((s) => s.trim()).filter(Boolean)
        .map((s) => (/^[1-9][0-9]{0,15}$/.test(s) ? Number(s) : s));
}

render();
const client = connect({
    url: socketUrl(),
    initData: globalThis.Telegram?.WebApp?.initData || undefined,
    shops: shopsFromQuery(),
    dev: true,
    coalesce: { windowMs: 250 }, // one refetch per burst of product/shop updates
    onEvent,
    onBatch,
    onResync,
    onStatus,
});

// For tests and for poking at the page from DevTools.
window.shopcastDemo = { client, state, render };

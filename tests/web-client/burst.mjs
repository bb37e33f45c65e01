// A burst of product events with an order_status in the middle, and what a coalescing client
// must have made of it. Shared by the Node client test and the Chromium test.
import assert from 'node:assert/strict';

// Publishes `count` product_updated events for `shopId` one after another, and one
// order_status after the first `orderAfter` of them. Resolves with the product events' ids in
// publish order and the order_status's id.
export async function publishBurst(stack, count, orderAfter, shopId) {
    const ids = [];
    let orderId = null;
    for (let n = 0; n < count; n += 1) {
        if (n === orderAfter) orderId = (await publishOne(stack, { type: 'order_status', orderId: shopId, status: 'paid' })).id;
        ids.push((await publishOne(stack, { type: 'product_updated', shopId, productId: n + 1 })).id);
    }
    return { shopId, ids, orderId, orderAfter };
}

async function publishOne(stack, body) {
    const reply = await stack.publish(body);
    assert.equal(reply.status, 200, `publish ${JSON.stringify(body)} -> ${reply.status} ${reply.text}`);
    return reply.json;
}

// `calls` is what the page's callbacks saw, in order: { at, event } for onEvent and
// { at, batch } for onBatch, `at` in ms.
export function assertCoalescedBurst(calls, burst, windowMs) {
    const batches = calls.filter((c) => c.batch);
    const immediate = calls.filter((c) => c.event);

    // Every product event once, in publish order, and only inside batches.
    assert.deepEqual(batches.flatMap((c) => c.batch.events.map((e) => e.id)), burst.ids);
    for (const { batch } of batches) {
        assert.equal(String(batch.shopId), String(burst.shopId));
        assert.ok(batch.events.length > 0, 'no empty batch');
        for (const event of batch.events) assert.equal(String(event.shopId), String(burst.shopId));
    }
    // One callback per window: batches of one shop are at least a window apart (5 ms of
    // slack for timer rounding), which for this burst is far fewer callbacks than events.
    for (let i = 1; i < batches.length; i += 1) {
        const gap = batches[i].at - batches[i - 1].at;
        assert.ok(gap >= windowMs - 5, `batch ${i} came ${gap} ms after the previous one (window ${windowMs} ms)`);
    }
    assert.ok(batches.length <= burst.ids.length / 4, `${batches.length} batches for ${burst.ids.length} events`);

    // The order_status went to onEvent at once: before the batch holding the product event
    // published right after it was delivered.
    assert.deepEqual(immediate.map((c) => c.event.id), [burst.orderId]);
    const orderAt = calls.indexOf(immediate[0]);
    const nextProduct = burst.ids[burst.orderAfter];
    const laterBatchAt = calls.findIndex((c) => c.batch?.events.some((e) => e.id === nextProduct));
    assert.ok(orderAt < laterBatchAt, `order_status at callback ${orderAt}, the batch after it at ${laterBatchAt}`);
    return { batches: batches.length };
}

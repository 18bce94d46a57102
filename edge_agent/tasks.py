"""Running asyncio coroutines side by side, shared by the gateway's uplink
and the receiver (both run a session's loops together)."""

import asyncio


async def until_one_fails(*coroutines):
    """Run the coroutines together until one raises (its exception
    propagates as is) or all end; the others are cancelled and awaited, so
    nothing of the session outlives it."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

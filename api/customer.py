"""Which customer a request acts for (temporary, until the accounts/auth branch replaces it).

The customer id comes from the ``X-Vigil-Customer`` header or the ``customer`` query parameter; neither
means operator scope (every customer's objects). There is no authentication here yet: the auth branch
swaps this dependency for one that reads the customer from the caller's credentials.
"""

from __future__ import annotations

from fastapi import Header, Query


async def customer_scope(
    x_vigil_customer: str | None = Header(None, description="customer id (temporary, replaced by auth)"),
    customer: str | None = Query(None, description="customer id (temporary, replaced by auth)"),
) -> str | None:
    return x_vigil_customer or customer or None

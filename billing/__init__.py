"""Billing: API keys, prices, token metering, the usage ledger, rate limits and budgets.

The gateway uses :class:`billing.biller.Biller` (admit, then settle) over a
:class:`billing.database.BillingDatabase` (keys, tenants, ledger) and a
:class:`billing.limits.LimitStore` (memory or Redis).
"""

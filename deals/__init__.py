"""Customers and deals: one customer across meetings, a deal's status pipeline with its log, notices sent by
the customer's channel through one outbox (email over SMTP, SMS through signaling's gateways), and surveys;
quotes with their items, expiring links and answers, and the negotiation over them (``quotes``,
``negotiation``, ``sheets`` with its sandboxed ``sheet_worker``; tables in :mod:`deals.quote_models`).

Owns the tables in :mod:`deals.models` and the rules over them as plain functions (``customers``,
``pipeline``, ``notices``, ``surveys``). Reads meeting records; never touches media or the room. The pages
are web/customers.py and web/deals.py.
"""

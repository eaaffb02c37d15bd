"""The guest マイページ: each customer's private page, where what happened in their meetings stays.

Owns the tables in :mod:`mypage.models` and the rules over them as plain functions: expiring, revocable links
(``links``), the one-time codes another browser must give (``codes``), the page's own sessions
(``sessions``), what the page shows, one function per section (``sections``), the org's choices of what
customers may see, and deletion requests that reach the org's admins (``requests``). Reads meeting records,
customers and deals; never touches media or the room. The pages are web/mypage.py (the customer's) and
web/mypage_staff.py (hosts and admins).
"""

"""Automation: cron jobs with time zones, the heartbeat's rules, and where replies are delivered.

The schedules, the scheduler's decisions and the heartbeat's rules are pure (no I/O, no clock
reads: time is passed in); `service.py` is the asyncio shell that persists and runs them.
Nothing is imported here, so loading the package costs nothing until a module is used.
"""

__all__: list[str] = []

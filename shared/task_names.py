"""Celery task names: the wire contract between the services (which send by name) and workers/."""

#: The queue the workers consume and the services send wake-ups to.
QUEUE = "cim"

CATCH_UP_PROJECTIONS = "cim.projections.catch_up_projections"

#: Redis key that coalesces wake-ups: a sender queues a catch-up only if it sets this key
#: (SET NX PX); the catch-up deletes it before reading the feed, so a commit made while one is
#: queued is covered by that one, and a commit made after it started queues the next.
CATCH_UP_PENDING_KEY = "cim:catch-up:pending"
#: The key expires after this long, so a lost or stuck message never blocks wake-ups for longer.
CATCH_UP_PENDING_TTL_MS = 3000

#: Daily disposal of records past their retention period (config/retention.toml).
DISPOSE_DUE_RECORDS = "cim.retention.dispose_due_records"

#: The daily deadline sweep: set new deadlines, record reminders due and deregistrations.
SWEEP_DEADLINES = "cim.deadlines.sweep_deadlines"
#: Set deadlines from new completions (often, so My CIM shows a deadline soon after it is known).
SET_DEADLINES = "cim.deadlines.set_deadlines"
#: Deliver due outbox rows (shared/outbox.py): beat every few seconds, and kicked after an enqueue.
DELIVER_OUTBOX = "cim.mail.deliver_outbox"
#: Coalesces the kicks as CATCH_UP_PENDING_KEY does the wake-ups.
OUTBOX_PENDING_KEY = "cim:outbox:pending"
OUTBOX_PENDING_TTL_MS = 3000
#: Daily: one mail to each assessor with reviews past due (assessment_service/staff_mail.py).
REMIND_OVERDUE_REVIEWS = "cim.mail.remind_overdue_reviews"
#: Monday morning: each coordinator's weekly digest (assessment_service/staff_mail.py).
SEND_COORDINATOR_DIGESTS = "cim.mail.send_coordinator_digests"

#: Issue diplomas to every eligible student who never had one, then queue the renders due.
ISSUE_DIPLOMAS = "cim.diplomas.issue_diplomas"
#: Render and store one diploma's PDF (argument: the diploma id); records DiplomaRendered once.
RENDER_DIPLOMA = "cim.diplomas.render_diploma"
#: Per-diploma Redis key prefix that coalesces queued renders (SET NX PX): one waits at a time.
RENDER_PENDING_PREFIX = "cim:render:pending:"
#: Short: a worker killed between claiming and sending leaves the key behind, and no render is
#: sent until it expires (a duplicate render is harmless: the render itself is idempotent).
RENDER_PENDING_TTL_MS = 60_000

"""Who may see the catalog: staff roles; study participants see only their study pages."""

from governance.access import STAFF

BROWSE_CATALOG = STAFF

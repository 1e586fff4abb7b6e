"""Who may label, and whose labels they may see.

Curators and safety reviewers label (safety reviewers alone take safety-review and flag
tasks: the queue's task audiences hold that); study participants label only study tasks,
on their simplified page. Labeling is blind: a reviewer sees only their own labels, and
nobody edits another's. Policy admins read every label (they lock them and run gold and
adjudication) but edit none.
"""

from governance.access import LABELERS, POLICY_ADMINS, STUDY_PARTICIPANTS, Audience

LABEL = LABELERS
STUDY = STUDY_PARTICIPANTS
# Anyone who can hold a lease: the queue decides which tasks each may get.
TAKE_TASKS = Audience("labelers and study participants", LABELERS.roles | STUDY_PARTICIPANTS.roles)
READ_ALL_LABELS = POLICY_ADMINS
# Reading labels: everyone who labels reads their own (blind labeling); policy admins
# read everyone's.
READ_LABELS = Audience(
    "labelers, study participants and policy admins", TAKE_TASKS.roles | READ_ALL_LABELS.roles
)

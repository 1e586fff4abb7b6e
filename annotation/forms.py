"""The comparison form. Reviewers answer for the slate shown on the left or right; the
stored judgment names the canonical slate (a or b), whichever side it was shown on."""

from django import forms

from annotation.models import Judgment

SIDES = [("left", "A"), ("right", "B"), ("tie", "Tie"), ("cannot_tell", "Cannot tell")]
REASON_TAGS = [
    ("unsafe_item", "Unsafe item"),
    ("off_topic", "Off topic"),
    ("repetitive", "Repetitive"),
    ("low_quality", "Low quality"),
    ("good_mix", "Good mix"),
    ("fits_history", "Fits their history"),
]


def canonical(side: str, left: str) -> str:
    """The stored judgment for a side the reviewer chose, given which slate was left."""
    if side == "left":
        return left
    if side == "right":
        return "b" if left == "a" else "a"
    return side


def displayed(judgment: str, left: str) -> str:
    """The side to show for a stored judgment (the inverse of ``canonical``)."""
    if judgment in (Judgment.A, Judgment.B):
        return "left" if judgment == left else "right"
    return judgment


class ComparisonForm(forms.Form):
    confidence = forms.TypedChoiceField(
        choices=[(n, str(n)) for n in range(1, 6)], coerce=int, widget=forms.RadioSelect
    )
    rationale = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 2})
    )
    reason_tags = forms.MultipleChoiceField(
        choices=REASON_TAGS, required=False, widget=forms.CheckboxSelectMultiple
    )
    time_spent_ms = forms.IntegerField(min_value=0, required=False)
    client_token = forms.UUIDField(widget=forms.HiddenInput)

    def __init__(self, *args, criteria, **kwargs):
        super().__init__(*args, **kwargs)
        self.criteria = criteria
        for criterion in criteria:
            self.fields[f"judgment_{criterion.slug}"] = forms.ChoiceField(
                choices=SIDES, widget=forms.RadioSelect, label=criterion.name,
                error_messages={"required": f"choose for {criterion.name}"},
            )  # fmt: skip

    def judgments(self, left: str) -> dict[str, str]:
        return {
            c.slug: canonical(self.cleaned_data[f"judgment_{c.slug}"], left) for c in self.criteria
        }

    def criterion_rows(self):
        """(criterion, bound field) pairs, for the template's keyboard rows."""
        return [(c, self[f"judgment_{c.slug}"]) for c in self.criteria]


class SkipForm(forms.Form):
    reason = forms.CharField(max_length=200)


class LabelEditForm(forms.Form):
    """Editing one's own comparison after submitting it (until it is locked)."""

    confidence = forms.TypedChoiceField(choices=[(n, str(n)) for n in range(1, 6)], coerce=int)
    rationale = forms.CharField(
        required=False, max_length=5000, widget=forms.Textarea(attrs={"rows": 3})
    )

    def __init__(self, *args, criteria, **kwargs):
        super().__init__(*args, **kwargs)
        self.criteria = criteria
        for criterion in criteria:
            self.fields[f"judgment_{criterion.slug}"] = forms.ChoiceField(
                choices=[(j.value, j.label) for j in Judgment], label=criterion.name
            )

    def judgments(self) -> dict[str, str]:
        return {c.slug: self.cleaned_data[f"judgment_{c.slug}"] for c in self.criteria}

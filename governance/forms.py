"""Forms of the governance pages. A content-policy rule is edited through a form built
from its kind's fields (``governance.rules.SPECS``), or as JSON."""

import json

from django import forms

from catalog.models import Topic
from governance.models import Criterion
from governance.roles import Role
from governance.rules import AUDIENCES, RATINGS, SPECS


class CriterionForm(forms.ModelForm):
    class Meta:
        model = Criterion
        fields = ["name", "description", "plain_description", "weight", "is_veto", "active"]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 3}),
            "plain_description": forms.Textarea(attrs={"rows": 2}),
        }


class NewCriterionForm(CriterionForm):
    slug = forms.SlugField(max_length=64)

    class Meta(CriterionForm.Meta):
        fields = ["slug", *CriterionForm.Meta.fields]


class PolicyForm(forms.Form):
    slug = forms.SlugField(max_length=64)
    name = forms.CharField(max_length=120)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class RulesJsonForm(forms.Form):
    rules = forms.CharField(widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false"}))
    changelog = forms.CharField(max_length=300, required=False)

    def clean_rules(self):
        text = self.cleaned_data["rules"]
        try:
            rules = json.loads(text)
        except json.JSONDecodeError as error:
            raise forms.ValidationError(
                f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
            ) from None
        if not isinstance(rules, list):
            raise forms.ValidationError("the rules must be a JSON list of objects")
        return rules


def _topic_choices() -> list[tuple[str, str]]:
    return [
        (t.slug, f"{t.name} (sensitive)" if t.sensitive else t.name)
        for t in Topic.objects.order_by("slug")
    ]


# Fields where choosing nothing means "every …" (null in the JSON form).
EVERY_WHEN_EMPTY = ("topics", "audiences", "audience")
AUDIENCE_CHOICES = [("", "Every audience"), *[(a, a.capitalize()) for a in AUDIENCES]]


def _field_for(name: str, kind: str) -> forms.Field:
    """The form field for one rule field (names as in governance.rules.SPECS)."""
    if name == "topics":
        required = kind == "forbidden_topics"
        help_text = "" if required else "none ticked: every topic marked sensitive"
        return forms.MultipleChoiceField(
            choices=_topic_choices, required=required, help_text=help_text,
            widget=forms.CheckboxSelectMultiple,
        )  # fmt: skip
    if name == "audiences":
        return forms.MultipleChoiceField(
            choices=[(a, a.capitalize()) for a in AUDIENCES], required=False,
            widget=forms.CheckboxSelectMultiple, help_text="none ticked: every audience",
        )  # fmt: skip
    if name == "audience":
        return forms.ChoiceField(choices=AUDIENCE_CHOICES, required=False)
    if name == "level":
        return forms.TypedChoiceField(choices=[(n, str(n)) for n in range(4)], coerce=int)
    if name == "rating":
        return forms.ChoiceField(choices=[(r, r) for r in RATINGS])
    if name == "items":
        return forms.CharField(
            widget=forms.Textarea(attrs={"rows": 3}), help_text="item ids, one per line"
        )
    if name == "weight":
        return forms.FloatField(min_value=0.001, max_value=1000, initial=1.0)
    return forms.IntegerField(min_value=1, initial=2)  # count, window, target


class RuleForm(forms.Form):
    """One rule of a chosen kind; ``rule()`` gives it in the JSON form."""

    id = forms.SlugField(max_length=64, label="Rule id")

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        for name in SPECS[kind].fields:
            self.fields[name] = _field_for(name, kind)

    def rule(self) -> dict:
        rule = {"id": self.cleaned_data["id"], "kind": self.kind}
        for name in SPECS[self.kind].fields:
            value = self.cleaned_data.get(name)
            if name == "items":
                value = [line.strip() for line in value.splitlines() if line.strip()]
            elif name in EVERY_WHEN_EMPTY and not value:
                value = None
            rule[name] = value
        return rule


class RoleForm(forms.Form):
    roles = forms.MultipleChoiceField(
        choices=[(role.value, role.label) for role in Role],
        required=False,
        widget=forms.CheckboxSelectMultiple,
    )


class TopicForm(forms.Form):
    name = forms.CharField(max_length=120)
    sensitive = forms.BooleanField(required=False)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

"""Content policy pages: the list, a policy's versions, and the version editor with its
validation and preview. Every write goes through governance.services (audited)."""

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from core.web import error_lines
from governance import preview, services
from governance.access import POLICY_ADMINS, STAFF, access
from governance.forms import PolicyForm, RuleForm, RulesJsonForm
from governance.models import ContentPolicy, PolicyVersion
from governance.rules import SPECS


def _version(slug: str, number: int) -> PolicyVersion:
    return get_object_or_404(
        PolicyVersion.objects.select_related("policy", "created_by", "published_by"),
        policy__slug=slug,
        number=number,
    )


@access(GET=STAFF, POST=POLICY_ADMINS)
def policy_list(request: HttpRequest) -> HttpResponse:
    form = PolicyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            policy = services.policy_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Created the policy {policy.name}.")
            return redirect("governance:policy_detail", slug=policy.slug)
    policies = ContentPolicy.objects.prefetch_related("versions")
    return render(request, "governance/policies/list.html", {"policies": policies, "form": form})


@access(GET=STAFF, POST=POLICY_ADMINS)
def policy_detail(request: HttpRequest, slug: str) -> HttpResponse:
    policy = get_object_or_404(ContentPolicy, slug=slug)
    if request.method == "POST":
        version = services.policy_version_create_draft(actor=request.user, policy=policy)
        messages.success(request, f"Started draft version {version.number}.")
        return redirect("governance:policy_version", slug=slug, number=version.number)
    versions = policy.versions.select_related("created_by", "published_by")
    return render(
        request, "governance/policies/detail.html", {"policy": policy, "versions": versions}
    )


@access(GET=STAFF, POST=POLICY_ADMINS)
def policy_version(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """The editor: rules as a table and as JSON, the problems that block publishing, and
    (loaded by htmx) the preview. POST saves the JSON form."""
    version = _version(slug, number)
    json_form = RulesJsonForm(
        request.POST or None,
        initial={"rules": json.dumps(version.rules, indent=2), "changelog": version.changelog},
    )
    if request.method == "POST" and json_form.is_valid():
        try:
            services.policy_version_update_draft(
                actor=request.user, version=version, **json_form.cleaned_data
            )
        except ValidationError as error:
            json_form.add_error(None, error)
        else:
            messages.success(request, "Saved the draft.")
            return redirect("governance:policy_version", slug=slug, number=number)
    return render(
        request, "governance/policies/version.html", _editor_context(request, version, json_form)
    )


def _editor_context(
    request, version: PolicyVersion, json_form: RulesJsonForm, rule_form=None
) -> dict:
    kind = request.GET.get("kind") or next(iter(SPECS))
    editable = version.is_draft and POLICY_ADMINS.admits(request.user)
    return {
        "version": version,
        "policy": version.policy,
        "rules": [{**rule, "spec": SPECS.get(rule.get("kind"))} for rule in version.rules],
        "problems": services.rules_errors(version.rules) if version.is_draft else [],
        "json_form": json_form,
        "rule_form": rule_form or (RuleForm(kind=kind) if editable else None),
        "kinds": SPECS.values(),
        "editable": editable,
    }


@access(GET=POLICY_ADMINS)
def policy_rule_form(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """The add-rule form for the kind chosen (an htmx fragment)."""
    version = _version(slug, number)
    kind = request.GET.get("kind") or next(iter(SPECS))
    if kind not in SPECS:
        raise Http404("no such rule kind")
    context = {"version": version, "rule_form": RuleForm(kind=kind), "kinds": SPECS.values()}
    return render(request, "governance/policies/version.html#rule-form", context)


@access(POST=POLICY_ADMINS)
def policy_rules_change(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """Add a rule from the form, or remove one by position."""
    version = _version(slug, number)
    rules = list(version.rules)
    if "remove" in request.POST:
        position = int(request.POST["remove"]) if request.POST["remove"].isdigit() else -1
        if not 0 <= position < len(rules):
            raise Http404("no such rule")
        rules.pop(position)
    else:
        kind = request.POST.get("kind", "")
        if kind not in SPECS:
            raise Http404("no such rule kind")
        rule_form = RuleForm(request.POST, kind=kind)
        if not rule_form.is_valid():
            json_form = RulesJsonForm(initial={"rules": json.dumps(rules, indent=2)})
            context = _editor_context(request, version, json_form, rule_form)
            return render(request, "governance/policies/version.html", context)
        rules.append(rule_form.rule())
    try:
        services.policy_version_update_draft(
            actor=request.user, version=version, rules=rules, changelog=version.changelog
        )
    except ValidationError as error:
        for message in error_lines(error):
            messages.error(request, message)
    return redirect("governance:policy_version", slug=slug, number=number)


@access(POST=POLICY_ADMINS)
def policy_version_publish(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    version = _version(slug, number)
    try:
        services.policy_version_publish(actor=request.user, version=version)
    except ValidationError as error:
        for message in error_lines(error):
            messages.error(request, f"Not published: {message}")
    else:
        messages.success(request, f"Published version {number}; it is now in force.")
    return redirect("governance:policy_version", slug=slug, number=number)


@access(POST=POLICY_ADMINS)
def policy_version_delete(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    try:
        services.policy_version_delete_draft(actor=request.user, version=_version(slug, number))
    except ValidationError as error:
        messages.error(request, " ".join(error_lines(error)))
        return redirect("governance:policy_version", slug=slug, number=number)
    messages.success(request, f"Deleted draft version {number}.")
    return redirect("governance:policy_detail", slug=slug)


@access(GET=STAFF)
def policy_version_preview(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """What the version would do to the catalog (an htmx fragment)."""
    version = _version(slug, number)
    problems = services.rules_errors(version.rules)
    context = {"version": version, "problems": problems}
    if not problems:
        seed = int(request.GET["seed"]) if request.GET.get("seed", "").isdigit() else 0
        sampled = preview.sample_context(seed=seed)
        context.update(
            effects=preview.hard_rule_effects(version),
            example=preview.example_slates(version, sampled) if sampled else None,
            next_seed=seed + 1,
        )
    return render(request, "governance/policies/preview.html", context)


urlpatterns = [
    path("policies/", policy_list, name="policy_list"),
    path("policies/<slug:slug>/", policy_detail, name="policy_detail"),
    path("policies/<slug:slug>/v<int:number>/", policy_version, name="policy_version"),
    path(
        "policies/<slug:slug>/v<int:number>/rule-form/", policy_rule_form, name="policy_rule_form"
    ),
    path(
        "policies/<slug:slug>/v<int:number>/rules/", policy_rules_change, name="policy_rules_change"
    ),
    path(
        "policies/<slug:slug>/v<int:number>/publish/",
        policy_version_publish,
        name="policy_version_publish",
    ),
    path(
        "policies/<slug:slug>/v<int:number>/delete/",
        policy_version_delete,
        name="policy_version_delete",
    ),
    path(
        "policies/<slug:slug>/v<int:number>/preview/",
        policy_version_preview,
        name="policy_version_preview",
    ),
]

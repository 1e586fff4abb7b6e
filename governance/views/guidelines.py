"""Pages: guidelines. Everyone reads them and acknowledges the versions that concern them;
policy admins write drafts, preview them live and publish them."""

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from core.web import add_errors, error_lines, safe_next
from governance import selectors, services
from governance.access import ANY_USER, POLICY_ADMINS, access
from governance.models import Criterion, Guideline, GuidelineVersion, VersionStatus
from governance.rendering import diff_lines
from governance.rendering import guideline_html as rendered

TASK_KINDS = [("", "General (everyone)")] + [
    (kind, kind.replace("_", " ").capitalize()) for kind in selectors.GUIDELINE_READERS
]
VERSION_TEMPLATE = "governance/guidelines/version.html"
PENDING_TEMPLATE = "governance/guidelines/pending.html"


# --- forms -------------------------------------------------------------------------------


class GuidelineForm(forms.Form):
    slug = forms.SlugField(max_length=64)
    title = forms.CharField(max_length=200)
    task_kind = forms.ChoiceField(choices=TASK_KINDS, required=False, label="Task kind")

    def clean_slug(self) -> str:
        slug = self.cleaned_data["slug"]
        if slug in services.RESERVED_GUIDELINE_SLUGS:
            raise ValidationError("this slug is taken by a page: choose another")
        return slug


class DraftForm(forms.Form):
    body = forms.CharField(required=False, strip=False, widget=forms.Textarea)
    changelog = forms.CharField(max_length=300, required=False)
    affects_criteria = forms.ModelMultipleChoiceField(
        queryset=Criterion.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Changes the meaning of labels on",
    )

    def __init__(self, *args, version: GuidelineVersion, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Active criteria, plus any the draft already names (so saving never drops them).
        chosen = version.affects_criteria.values("pk")
        criteria = self.fields["affects_criteria"]
        criteria.queryset = Criterion.objects.filter(Q(active=True) | Q(pk__in=chosen))
        criteria.label_from_instance = lambda criterion: criterion.name


class DiffForm(forms.Form):
    def __init__(self, *args, numbers: list[int], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [(n, f"v{n}") for n in numbers]
        for name, label in (("from", "From"), ("to", "To")):
            self.fields[name] = forms.IntegerField(
                min_value=1, label=label, widget=forms.Select(choices=choices)
            )


# --- views -------------------------------------------------------------------------------


def _visible_version(user, slug: str, number: int) -> GuidelineVersion:
    """The version, or 404 when it does not exist or is not the user's to see (drafts)."""
    guideline = get_object_or_404(Guideline, slug=slug)
    visible = selectors.guideline_versions_visible(user=user, guideline=guideline)
    return get_object_or_404(visible, number=number)


@access(GET=ANY_USER, POST=POLICY_ADMINS)
def guideline_list(request: HttpRequest) -> HttpResponse:
    form = GuidelineForm(request.POST) if request.method == "POST" else GuidelineForm()
    if request.method == "POST" and form.is_valid():
        try:
            guideline = services.guideline_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            add_errors(form, error)
        else:
            messages.success(request, f"Created the guideline {guideline.slug}.")
            return redirect("governance:guideline_detail", slug=guideline.slug)
    published = Prefetch(
        "versions",
        queryset=GuidelineVersion.objects.filter(status=VersionStatus.PUBLISHED),
        to_attr="published",
    )
    pending = {v.guideline_id for v in selectors.guideline_versions_pending(user=request.user)}
    rows = [
        {"guideline": g, "published": next(iter(g.published), None), "pending": g.pk in pending}
        for g in Guideline.objects.prefetch_related(published)
    ]
    context = {"rows": rows, "form": form, "can_edit": POLICY_ADMINS.admits(request.user)}
    return render(request, "governance/guidelines/list.html", context)


@access(GET=ANY_USER, POST=POLICY_ADMINS)
def guideline_detail(request: HttpRequest, slug: str) -> HttpResponse:
    guideline = get_object_or_404(Guideline, slug=slug)
    if request.method == "POST":
        draft = services.guideline_version_create_draft(actor=request.user, guideline=guideline)
        messages.success(request, f"Started draft v{draft.number}.")
        return redirect("governance:guideline_version", slug=slug, number=draft.number)
    versions = list(selectors.guideline_versions_visible(user=request.user, guideline=guideline))
    published = next((v for v in versions if v.status == VersionStatus.PUBLISHED), None)
    numbers = [v.number for v in versions]
    initial = {"from": numbers[1], "to": numbers[0]} if len(numbers) > 1 else {}
    context = {
        "guideline": guideline,
        "versions": versions,
        "published": published,
        "html": rendered(published.body) if published else "",
        "compare": DiffForm(initial=initial, numbers=numbers),
        "can_edit": POLICY_ADMINS.admits(request.user),
    }
    return render(request, "governance/guidelines/detail.html", context)


def _version_page(request, version, form=None, errors=()) -> HttpResponse:
    editable = version.status == VersionStatus.DRAFT and POLICY_ADMINS.admits(request.user)
    errors = [*errors, *(form.non_field_errors() if form is not None else [])]
    if form is None and editable:
        initial = {
            "body": version.body,
            "changelog": version.changelog,
            "affects_criteria": list(version.affects_criteria.all()),
        }
        form = DraftForm(initial=initial, version=version)
    context = {
        "guideline": version.guideline,
        "version": version,
        "html": rendered(version.body),
        "form": form if editable else None,
        "errors": errors,
    }
    return render(request, VERSION_TEMPLATE, context)


@access(GET=ANY_USER, POST=POLICY_ADMINS)
def guideline_version(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    version = _visible_version(request.user, slug, number)
    if request.method != "POST":
        return _version_page(request, version)
    form = DraftForm(request.POST, version=version)
    if form.is_valid():
        try:
            services.guideline_version_update_draft(
                actor=request.user, version=version, **form.cleaned_data
            )
        except ValidationError as error:  # ImmutableVersion too: it is no draft any more
            add_errors(form, error)
        else:
            messages.success(request, f"Saved draft v{number}.")
            return redirect("governance:guideline_version", slug=slug, number=number)
    return _version_page(request, version, form=form)


@access(POST=POLICY_ADMINS)
def guideline_preview(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    """The htmx live preview: only the rendered (sanitized) Markdown of the posted body."""
    _visible_version(request.user, slug, number)
    html = rendered(request.POST.get("body", ""))
    return render(request, VERSION_TEMPLATE + "#preview", {"html": html})


@access(POST=POLICY_ADMINS)
def guideline_publish(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    version = _visible_version(request.user, slug, number)
    try:
        services.guideline_version_publish(actor=request.user, version=version)
    except ValidationError as error:
        return _version_page(request, version, errors=error_lines(error))
    messages.success(request, f"Published {slug} v{number}: readers will be asked to read it.")
    return redirect("governance:guideline_detail", slug=slug)


@access(GET=ANY_USER)
def guideline_diff(request: HttpRequest, slug: str) -> HttpResponse:
    guideline = get_object_or_404(Guideline, slug=slug)
    visible = selectors.guideline_versions_visible(user=request.user, guideline=guideline)
    numbers = [v.number for v in visible]
    asked = "from" in request.GET or "to" in request.GET
    form = DiffForm(request.GET if asked else None, numbers=numbers)
    context = {"guideline": guideline, "form": form, "asked": asked, "lines": None}
    if asked and form.is_valid():
        old = get_object_or_404(visible, number=form.cleaned_data["from"])
        new = get_object_or_404(visible, number=form.cleaned_data["to"])
        context.update(old=old, new=new, lines=diff_lines(old.body, new.body))
    return render(request, "governance/guidelines/diff.html", context)


def _pending_page(request, next_url: str, errors=()) -> HttpResponse:
    pending = [
        {"version": v, "html": rendered(v.body)}
        for v in selectors.guideline_versions_pending(user=request.user)
    ]
    context = {"pending": pending, "next": next_url, "errors": errors}
    return render(request, PENDING_TEMPLATE, context)


@access(GET=ANY_USER)
def guidelines_pending(request: HttpRequest) -> HttpResponse:
    return _pending_page(request, safe_next(request))


@access(POST=ANY_USER)
def guideline_acknowledge(request: HttpRequest, slug: str, number: int) -> HttpResponse:
    version = _visible_version(request.user, slug, number)
    next_url = safe_next(request)
    try:
        services.guideline_acknowledge(user=request.user, version=version)
    except ValidationError as error:
        return _pending_page(request, next_url, errors=error_lines(error))
    messages.success(request, f"Noted: you have read {slug} v{number}.")
    if next_url and not selectors.guideline_versions_pending(user=request.user):
        return redirect(next_url)
    pending_url = reverse("governance:guidelines_pending")
    if next_url:
        pending_url += "?" + urlencode({"next": next_url})
    return redirect(pending_url)


urlpatterns = [
    path("guidelines/", guideline_list, name="guideline_list"),
    # Before <slug>/: "pending" is a page, not a guideline (GuidelineForm reserves it).
    path("guidelines/pending/", guidelines_pending, name="guidelines_pending"),
    path("guidelines/<slug:slug>/", guideline_detail, name="guideline_detail"),
    path("guidelines/<slug:slug>/diff/", guideline_diff, name="guideline_diff"),
    path("guidelines/<slug:slug>/v<int:number>/", guideline_version, name="guideline_version"),
    path(
        "guidelines/<slug:slug>/v<int:number>/preview/",
        guideline_preview,
        name="guideline_preview",
    ),
    path(
        "guidelines/<slug:slug>/v<int:number>/publish/",
        guideline_publish,
        name="guideline_publish",
    ),
    path(
        "guidelines/<slug:slug>/v<int:number>/acknowledge/",
        guideline_acknowledge,
        name="guideline_acknowledge",
    ),
]

"""Criteria pages: everyone who labels reads them; policy admins add and edit."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from governance import services
from governance.access import ANY_USER, POLICY_ADMINS, access
from governance.forms import CriterionForm, NewCriterionForm
from governance.models import Criterion


@access(GET=ANY_USER, POST=POLICY_ADMINS)
def criterion_list(request: HttpRequest) -> HttpResponse:
    form = NewCriterionForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            criterion = services.criterion_create(actor=request.user, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Added the criterion {criterion.name}.")
            return redirect("governance:criterion_list")
    criteria = Criterion.objects.all()
    return render(request, "governance/criteria/list.html", {"criteria": criteria, "form": form})


@access(GET=POLICY_ADMINS, POST=POLICY_ADMINS)
def criterion_edit(request: HttpRequest, slug: str) -> HttpResponse:
    criterion = get_object_or_404(Criterion, slug=slug)
    form = CriterionForm(request.POST or None, instance=Criterion.objects.get(pk=criterion.pk))
    if request.method == "POST" and form.is_valid():
        changes = {name: form.cleaned_data[name] for name in form.changed_data}
        try:
            services.criterion_update(actor=request.user, criterion=criterion, **changes)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Saved {criterion.name}.")
            return redirect("governance:criterion_list")
    return render(request, "governance/criteria/edit.html", {"criterion": criterion, "form": form})


urlpatterns = [
    path("criteria/", criterion_list, name="criterion_list"),
    path("criteria/<slug:slug>/edit/", criterion_edit, name="criterion_edit"),
]

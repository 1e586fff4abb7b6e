"""Topics and whether they are sensitive: what content policies act on. Staff read;
policy admins change (audited, and the engine's arrays are rebuilt)."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from catalog.models import Topic
from catalog.selectors import topic_list_with_counts
from governance import services
from governance.access import POLICY_ADMINS, STAFF, access
from governance.forms import TopicForm


@access(GET=STAFF)
def topic_list(request: HttpRequest) -> HttpResponse:
    return render(request, "governance/topics/list.html", {"topics": topic_list_with_counts()})


@access(GET=POLICY_ADMINS, POST=POLICY_ADMINS)
def topic_edit(request: HttpRequest, slug: str) -> HttpResponse:
    topic = get_object_or_404(Topic, slug=slug)
    initial = {"name": topic.name, "sensitive": topic.sensitive, "description": topic.description}
    form = TopicForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.topic_update(actor=request.user, topic=topic, **form.cleaned_data)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"Saved the topic {topic.slug}.")
            return redirect("governance:topic_list")
    return render(request, "governance/topics/edit.html", {"topic": topic, "form": form})


urlpatterns = [
    path("topics/", topic_list, name="topic_list"),
    path("topics/<slug:slug>/edit/", topic_edit, name="topic_edit"),
]

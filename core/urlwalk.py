"""Every URL in the URL configuration, with sample values for its parameters, so tests
can walk the whole site (and fail when a new URL is not covered)."""

import re
from collections.abc import Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

SAMPLE_BY_CONVERTER = {
    "int": "1",
    "str": "sample",
    "slug": "sample",
    "path": "sample",
    "uuid": "00000000-0000-0000-0000-000000000000",
}


@dataclass(frozen=True)
class SiteUrl:
    path: str
    name: str | None
    route: str  # the pattern as written, for readable failures


def _sample_route(pattern: RoutePattern) -> str:
    def replace(match: re.Match) -> str:
        converter = match.group(1) or "str"
        return SAMPLE_BY_CONVERTER.get(converter, "1")

    return re.sub(r"<(?:(\w+):)?\w+>", replace, str(pattern._route))


def _sample_regex(pattern: RegexPattern) -> str:
    regex = pattern._regex.lstrip("^").rstrip("$").replace("\\Z", "")

    def group(match: re.Match) -> str:
        body = match.group(2)
        if re.fullmatch(r"[\w|]+", body):  # alternatives such as app labels: take the first
            return body.split("|")[0]
        return "1"

    sample = re.sub(r"\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)", group, regex)
    return re.sub(r"[\\?*+]", "", sample)


def _sample(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        return _sample_route(pattern)
    return _sample_regex(pattern)


def site_urls(resolver: URLResolver | None = None, prefix: str = "/") -> Iterator[SiteUrl]:
    resolver = resolver or get_resolver()
    for entry in resolver.url_patterns:
        part = _sample(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from site_urls(entry, prefix + part)
        elif isinstance(entry, URLPattern):
            yield SiteUrl(prefix + part, entry.name, prefix + str(entry.pattern))

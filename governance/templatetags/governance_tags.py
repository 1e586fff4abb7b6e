from django import template

register = template.Library()


@register.filter
def rule_params(rule: dict) -> str:
    """A rule's parameters in one readable line: "topics: gambling, alcohol · level: 1"."""
    parts = []
    for name, value in rule.items():
        if name in ("id", "kind", "spec"):
            continue
        if value is None:
            shown = "every"
        elif isinstance(value, list):
            shown = ", ".join(str(v) for v in value[:8]) + (" …" if len(value) > 8 else "")
        else:
            shown = str(value)
        parts.append(f"{name}: {shown}")
    return " · ".join(parts)


@register.filter
def get_item(mapping: dict, key):
    return mapping.get(key)

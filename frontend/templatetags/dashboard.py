"""Small helpers of the dashboard's templates."""

from __future__ import annotations

from datetime import date
from typing import Any

from django import template
from django.utils import timezone

from frontend.middleware import idle_timeout_s as _idle_timeout_s

register = template.Library()


@register.simple_tag
def idle_timeout_s() -> int:
    return _idle_timeout_s()


@register.filter
def get_item(mapping: dict[str, Any], key: str) -> Any:
    return mapping.get(key)


@register.filter
def ms(value: Any) -> str:
    """A feature in milliseconds, or a dash when it was not measurable."""
    return "—" if value in (None, "") else f"{float(value):.0f} ms"


# Abbreviations as clinicians write them; the rest read as words ("Sinus", "Pause").
RHYTHM_LABELS = {"af": "AF", "vf": "VF / ventricular flutter"}


@register.filter
def rhythm_label(value: str) -> str:
    if not value:
        return "—"
    return RHYTHM_LABELS.get(value, value.replace("_", " ").capitalize())


@register.filter
def age_years(born: date) -> int:
    today = timezone.localdate()
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


@register.filter
def percent_of(part: int, whole: int) -> float:
    return round(100 * min(part, whole) / whole, 1) if whole else 0.0

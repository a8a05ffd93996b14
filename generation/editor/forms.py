"""The compose form: its text fields (with their limits and how the page shows them), tone
and length, validated from the page's JSON body. Errors name the field, never its value."""
from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.conf import settings

from generation.lifecycle.refusals import RequestInvalid

PROMPT_TEMPLATE = "prompts/product_copy.txt"


@dataclass(frozen=True)
class TextField:
    name: str
    label: str
    max_chars: int
    multiline: bool = False
    required: bool = False
    sensitive: bool = False
    help: str = ""


TEXT_FIELDS = (
    TextField("product_name", "Product name", 200, required=True),
    TextField("product_details", "Product details", 4000, multiline=True, help="Materials, size, features."),
    TextField("audience", "Audience", 300, help="Who the copy is for."),
    TextField("internal_notes", "Internal notes", 2000, multiline=True, sensitive=True,
              help="Background for the model; not meant to appear in the copy."),
    TextField("pricing_terms", "Pricing and supplier terms", 2000, multiline=True, sensitive=True,
              help="Costs, margins, supplier names and terms."),
)
TONES = {
    "friendly": "friendly and warm",
    "professional": "professional and precise",
    "playful": "playful and light",
    "premium": "premium and understated",
    "plain": "plain and factual",
}
LENGTHS = {  # value: (label, max_tokens, words for the prompt)
    "short": ("Short", 80, "about 40 words"),
    "medium": ("Medium", 160, "about 80 words"),
    "long": ("Long", 320, "about 160 words"),
}
STOP_SEQUENCES = ("\n\n\n", "\nProduct:", "\nProduct description:")  # the model starting another listing


class ComposeForm(forms.Form):
    """TEXT_FIELDS, tone and length. Build it with `from_json`, which raises RequestInvalid."""

    tone = forms.ChoiceField(choices=[(value, value) for value in TONES], required=False)
    length = forms.ChoiceField(choices=[(value, value) for value in LENGTHS], required=False)
    CHOICE_ERRORS = {"tone": "Choose one of the listed tones.", "length": "Choose short, medium or long."}

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for spec in TEXT_FIELDS:
            self.fields[spec.name] = forms.CharField(
                label=spec.label, max_length=spec.max_chars, required=spec.required, strip=False,
                error_messages={
                    "required": f"{spec.label} is required.",
                    "max_length": f"{spec.label} is longer than {spec.max_chars} characters.",
                },
            )

    @classmethod
    def from_json(cls, data: dict) -> "ComposeForm":
        """The bound, valid form for a JSON body, or RequestInvalid naming the first bad field."""
        if any(key not in {spec.name for spec in TEXT_FIELDS} | {"tone", "length"} for key in data):
            raise RequestInvalid(400, "invalid_request", "The request has an unknown field.")
        for spec in TEXT_FIELDS:
            if not isinstance(data.get(spec.name, ""), str):
                raise RequestInvalid(400, "invalid_request", f"{spec.label} must be text.", spec.name)
        form = cls(data)
        if not form.is_valid():
            name, errors = next(iter(form.errors.items()))
            message = cls.CHOICE_ERRORS.get(name) or errors[0]
            raise RequestInvalid(400, "invalid_request", message, name)
        if sum(len(text) for text in form.texts().values()) > settings.SLUICE_MAX_PROMPT_CHARS:
            raise RequestInvalid(
                413, "prompt_too_large", f"Together the fields exceed {settings.SLUICE_MAX_PROMPT_CHARS} characters."
            )
        return form

    def clean(self):
        cleaned = super().clean()
        for spec in TEXT_FIELDS:
            if spec.required and not (cleaned.get(spec.name) or "").strip():
                self.add_error(spec.name, f"{spec.label} is required.")
        cleaned["tone"] = cleaned.get("tone") or "friendly"
        cleaned["length"] = cleaned.get("length") or "medium"
        return cleaned

    def texts(self) -> dict[str, str]:
        """Each text field's value, as sent (empty when absent)."""
        return {spec.name: self.cleaned_data.get(spec.name) or "" for spec in TEXT_FIELDS}

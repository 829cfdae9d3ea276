"""Forms of the researcher pages."""
from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from annotation.claims.files import VERIFICATION_STATES
from annotation.models import Split


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        single = super().clean
        if isinstance(data, (list, tuple)):
            return [single(item, initial) for item in data]
        return [single(data, initial)]


class ClaimImportForm(forms.Form):
    dataset_name = forms.CharField(
        max_length=200, label="Dataset", help_text="An existing dataset to add to, or a new name."
    )
    files = MultipleFileField(
        label="Claim files",
        help_text="FrameRef JSON Lines (.jsonl), Parquet or CSV with the columns claim_id, "
                  "restated_claim, framing_type, true_label. Names like train-0000.jsonl set the split.",
    )
    default_split = forms.ChoiceField(
        choices=Split.choices, initial=Split.NONE, label="Split for rows that name none"
    )
    verification = forms.ChoiceField(
        choices=[(state, state.replace("_", " ")) for state in VERIFICATION_STATES],
        initial="unverified",
        label="Verification of restatements",
    )
    skip_existing = forms.BooleanField(
        required=False, label="Skip rows already in the dataset (same claim id and text)"
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        files = self.fields["files"]
        files.help_text += (
            f" Up to {filesizeformat(settings.FRAMELAB_MAX_UPLOAD_FILE_BYTES)} a file and "
            f"{filesizeformat(settings.FRAMELAB_MAX_UPLOAD_REQUEST_BYTES)} an upload; "
            f".jsonl.gz and .csv.gz files are much smaller.")

"""Fixtures shared by the participant-flow tests and the answer guards."""
import pytest
from django.core.management import call_command

from annotation.models import Dataset, Study
from annotation.studies.services import study_create


@pytest.fixture
def study():
    """The pilot study the rater's flow is tried on: 8 batches of 6 items, 2 raters each,
    open, with a Prolific completion code. Modules that need another study define their own
    `study` fixture, which takes precedence."""
    call_command("load_demo", no_user=True)
    return study_create(dataset=Dataset.objects.get(name="FrameLab demo"), name="pilot",
                        base_claims=8, batch_size=6, raters_per_batch=2, seed=7,
                        status=Study.Status.OPEN, completion_code="DONE123",
                        completion_url="https://app.prolific.com/submissions/complete?cc=DONE123")

import pytest

PASSWORD = "pw-long-enough-1"


@pytest.fixture
def editor(django_user_model):
    return django_user_model.objects.create_user("editor", password=PASSWORD)

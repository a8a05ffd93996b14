"""Admin for SensitiveTerm: the terms the redaction core hides wherever they appear."""
from django.contrib import admin

from .models import SensitiveTerm


@admin.register(SensitiveTerm)
class SensitiveTermAdmin(admin.ModelAdmin):
    list_display = ["term", "type", "active", "updated_at"]
    list_filter = ["type", "active"]
    search_fields = ["term"]
    list_editable = ["active"]

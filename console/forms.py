"""The console's forms. What a value may be is the API's rule, read from the API's serializers."""

from __future__ import annotations

from django import forms
from rest_framework import serializers

from accounts.serializers import password_checkable


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username"}))
    password = forms.CharField(strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        try:
            return password_checkable(password)  # bcrypt's limit, as /admin/login checks it
        except serializers.ValidationError as exc:
            raise forms.ValidationError(str(exc.detail[0])) from None


class ImportForm(forms.Form):
    file = forms.FileField(label="Exported session (JSON)")

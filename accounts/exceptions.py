from core.exceptions import ServiceError


class InvalidCredentialInput(ServiceError):
    status_code = 400
    code = "invalid"


class UsernameTaken(ServiceError):
    status_code = 409
    code = "username_taken"


class NotFound(ServiceError):
    """What was asked for does not exist, or is not the asking admin's."""

    status_code = 404
    code = "not_found"


class AdminNotFound(NotFound):
    pass


class LoginSessionNotFound(NotFound):
    pass


class ApiKeyNotFound(NotFound):
    pass


class WeakDefaultPassword(ServiceError):
    code = "weak_default_password"


class WrongPassword(ServiceError):
    status_code = 400
    code = "wrong_password"


class CurrentPasswordRequired(ServiceError):
    status_code = 400
    code = "current_password_required"

from core.exceptions import NotFound, ServiceError


class InvalidCredentialInput(ServiceError):
    status_code = 400
    code = "invalid"


class UsernameTaken(ServiceError):
    status_code = 409
    code = "username_taken"


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

from core.exceptions import ServiceError


class InvalidCredentialInput(ServiceError):
    status_code = 400
    code = "invalid"


class UsernameTaken(ServiceError):
    status_code = 409
    code = "username_taken"


class AdminNotFound(ServiceError):
    status_code = 404
    code = "not_found"


class WeakDefaultPassword(ServiceError):
    code = "weak_default_password"


class WrongPassword(ServiceError):
    status_code = 400
    code = "wrong_password"

"""Arrangements of the two-factor tests: an authenticator app that never shows the same code
twice (as a real one, used over time, would not), and enrolling an account through the API."""
import time

import pyotp

from tests.helpers import PASSWORD, bearer

MFA = "/api/v1/auth/mfa"
STEP = 30


class Authenticator:
    """The app on the user's phone: ``code()`` is a code the server has not seen yet, of a time
    step inside the server's window (the previous, current or next step). Each call moves on one
    step, waiting for the clock when the window is used up. Codes are never taken within two
    seconds of a step's end, so the server's clock cannot move on between here and there."""

    def __init__(self, secret):
        self.totp = pyotp.TOTP(secret)
        self.last_step = None

    def _now(self):
        now = time.time()
        if STEP - now % STEP < 2:
            time.sleep(STEP - now % STEP + 0.1)
            now = time.time()
        return int(now) // STEP

    def code(self):
        now = self._now()
        step = now - 1 if self.last_step is None else max(self.last_step + 1, now - 1)
        while step > now + 1:
            time.sleep(STEP - time.time() % STEP + 0.1)
            now = self._now()
        self.last_step = step
        return self.totp.generate_otp(step)

    def code_of(self, step):
        return self.totp.generate_otp(step)


def enrol(client, token, password=PASSWORD):
    """Turn two-factor on for the account of ``token``; its authenticator and recovery codes."""
    setup = client.post(f"{MFA}/totp/setup", json={"current_password": password}, headers=bearer(token))
    assert setup.status_code == 200, setup.get_json()
    device = Authenticator(setup.get_json()["secret"])
    enabled = client.post(f"{MFA}/totp/enable", json={"code": device.code()}, headers=bearer(token))
    assert enabled.status_code == 200, enabled.get_json()
    return device, enabled.get_json()["recovery_codes"]


def log_in_with_second_factor(client, email, code, password=PASSWORD):
    """Password, then the code: the answer of the second step."""
    first = client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert first.status_code == 200 and first.get_json()["mfa_required"] is True, first.get_json()
    return client.post(f"{MFA}/verify", json={"mfa_token": first.get_json()["mfa_token"], "code": code})

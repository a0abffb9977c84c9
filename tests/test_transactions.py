"""Issue 27, item 1: one transaction per use case, declared once (saas/core/database.py).

Against PostgreSQL, with rows the tests read back through a connection of their own, so what
counts is what was committed, not what the session holds."""
import pytest
import sqlalchemy as sa

from saas.core.database import after_commit, atomic, in_transaction, savepoint, transaction
from saas.core.errors import Conflict
from saas.extensions import db
from saas.orgs.models import Organization


def stored_names():
    """The organizations' names as committed, read outside the session under test."""
    with db.engine.connect() as connection:
        return sorted(connection.scalars(sa.select(Organization.name)).all())


def add_org(name, slug=None):
    db.session.add(Organization(name=name, slug=slug or name.lower()))
    db.session.flush()


@pytest.fixture
def session(app):
    with app.app_context():
        yield db.session
        db.session.remove()


def test_a_use_case_commits_when_it_returns(session):
    @atomic
    def create(name):
        add_org(name)
        return name

    assert create("Kept") == "Kept"
    assert stored_names() == ["Kept"]
    assert not in_transaction()


def test_a_use_case_that_raises_leaves_nothing(session):
    @atomic
    def create_then_refuse(name):
        add_org(name)
        raise Conflict("refused after writing")

    with pytest.raises(Conflict):
        create_then_refuse("Gone")
    assert stored_names() == []
    assert not in_transaction()


def test_a_nested_use_case_joins_the_outer_one_which_decides(session):
    @atomic
    def inner(name):
        add_org(name)

    @atomic
    def outer():
        inner("Inner")
        assert stored_names() == []  # not committed by the inner one
        add_org("Outer")
        raise Conflict("the outer one fails after")

    with pytest.raises(Conflict):
        outer()
    assert stored_names() == []


def test_after_commit_work_runs_only_once_committed(session):
    ran = []

    with transaction():
        add_org("First")
        after_commit(lambda: ran.append(stored_names()))
        assert ran == []
    assert ran == [["First"]]  # it saw the committed row

    with pytest.raises(Conflict):
        with transaction():
            add_org("Second")
            after_commit(lambda: ran.append("must not run"))
            raise Conflict("rolled back")
    assert ran == [["First"]]

    after_commit(lambda: ran.append("outside a use case: at once"))
    assert ran[-1] == "outside a use case: at once"


def test_after_commit_work_waits_for_the_outermost_use_case(session):
    ran = []

    @atomic
    def inner():
        add_org("Inner")
        after_commit(lambda: ran.append("inner's work"))

    with transaction():
        inner()
        assert ran == []
    assert ran == ["inner's work"]


def test_a_savepoint_undoes_only_its_own_writes(session):
    with transaction():
        add_org("Taken", slug="taken")
        with pytest.raises(sa.exc.IntegrityError):
            with savepoint():
                add_org("Clash", slug="taken")  # the unique slug is taken
        add_org("Other", slug="other")
    assert stored_names() == ["Other", "Taken"]

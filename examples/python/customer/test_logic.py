"""The customer rules of DOMAINS.md, given / when / then.

    /usr/bin/python3 -m unittest discover -s examples/python/customer -t examples/python/customer
"""
import unittest

import grpc

import gen_path  # noqa: F401
import logic
from aggregate import Rejection
from angzarr import types_pb2
from examples import customer_pb2 as pb

CREATED = pb.CustomerCreated(name="Ann", email="ann@example.com")


def contextual(given, when, snapshot=None, snapshot_sequence=0):
    """A ContextualCommand: history `given` (numbered after the snapshot),
    command `when`."""
    cc = types_pb2.ContextualCommand()
    cover = types_pb2.Cover(domain=logic.DOMAIN, correlation_id="test")
    cover.root.value = bytes(range(16))
    cc.events.cover.CopyFrom(cover)
    cc.command.cover.CopyFrom(cover)
    if snapshot is not None:
        cc.events.snapshot.sequence = snapshot_sequence
        cc.events.snapshot.state.Pack(snapshot)
    for i, event in enumerate(given):
        page = cc.events.pages.add()
        page.num = snapshot_sequence + i
        page.event.Pack(event)
    page = cc.command.pages.add()
    page.sequence = snapshot_sequence + len(given)
    page.command.Pack(when)
    return cc


class Case(unittest.TestCase):
    """Given / when / then against the customer logic."""

    def then_events(self, given, when, *want, **kw):
        book = logic.logic().handle(contextual(given, when, **kw))
        got = []
        for page in book.pages:
            event = logic.logic().unpack_event(page.event)
            self.assertIsNotNone(event, page.event.type_url)
            got.append(event)
        self.assertEqual(got, list(want))
        self.assertEqual(book.cover.correlation_id, "test")

    def then_rejected(self, given, when, code, phrase):
        with self.assertRaises(Rejection) as caught:
            logic.logic().handle(contextual(given, when))
        self.assertEqual(caught.exception.code, code)
        self.assertIn(phrase.lower(), caught.exception.message.lower())


INVALID, PRECONDITION = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION


class CreateTest(Case):
    def test_create(self):
        self.then_events([], pb.CreateCustomer(name="Ann", email="ann@example.com"), CREATED)

    def test_create_when_it_exists(self):
        self.then_rejected([CREATED], pb.CreateCustomer(name="Bob", email="b@x"), PRECONDITION, "already exists")

    def test_empty_name(self):
        self.then_rejected([], pb.CreateCustomer(email="ann@example.com"), INVALID, "name")

    def test_empty_email(self):
        self.then_rejected([], pb.CreateCustomer(name="Ann"), INVALID, "email")


class AddTest(Case):
    def test_balance_accumulates_50_then_30_to_80(self):
        self.then_events(
            [CREATED, pb.LoyaltyPointsAdded(points=50, new_balance=50, new_lifetime_points=50)],
            pb.AddLoyaltyPoints(points=30, reason="order"),
            pb.LoyaltyPointsAdded(points=30, new_balance=80, reason="order", new_lifetime_points=80))

    def test_missing_customer(self):
        self.then_rejected([], pb.AddLoyaltyPoints(points=10), PRECONDITION, "does not exist")

    def test_zero_points(self):
        self.then_rejected([CREATED], pb.AddLoyaltyPoints(points=0), INVALID, "positive")

    def test_negative_points(self):
        self.then_rejected([CREATED], pb.AddLoyaltyPoints(points=-5), INVALID, "positive")


class RedeemTest(Case):
    def test_redeem(self):
        self.then_events(
            [CREATED, pb.LoyaltyPointsAdded(points=100, new_balance=100, new_lifetime_points=100)],
            pb.RedeemLoyaltyPoints(points=30, redemption_type="discount"),
            pb.LoyaltyPointsRedeemed(points=30, new_balance=70, redemption_type="discount"))

    def test_more_than_the_balance(self):
        self.then_rejected(
            [CREATED, pb.LoyaltyPointsAdded(points=20, new_balance=20, new_lifetime_points=20)],
            pb.RedeemLoyaltyPoints(points=21), PRECONDITION, "insufficient points")

    def test_missing_customer(self):
        self.then_rejected([], pb.RedeemLoyaltyPoints(points=1), PRECONDITION, "does not exist")

    def test_zero_points(self):
        self.then_rejected([CREATED], pb.RedeemLoyaltyPoints(points=0), INVALID, "positive")

    def test_negative_points(self):
        self.then_rejected([CREATED], pb.RedeemLoyaltyPoints(points=-1), INVALID, "positive")


HUNDRED = pb.LoyaltyPointsAdded(points=100, new_balance=100, new_lifetime_points=100)
REDEEMED30 = pb.LoyaltyPointsRedeemed(points=30, new_balance=70, redemption_type="discount", reference="order-1")


class RefundTest(Case):
    """Redemptions by reference, and refunds of exactly what they took."""

    def test_redeem_under_a_reference(self):
        self.then_events([CREATED, HUNDRED], pb.RedeemLoyaltyPoints(points=30, redemption_type="discount", reference="order-1"),
                         REDEEMED30)

    def test_redeem_twice_under_one_reference(self):
        self.then_rejected([CREATED, HUNDRED, REDEEMED30], pb.RedeemLoyaltyPoints(points=10, reference="order-1"),
                           PRECONDITION, "already redeemed")

    def test_redeem_under_a_refunded_reference(self):
        closed = pb.LoyaltyPointsRefunded(reference="order-1", points=0, new_balance=100)
        self.then_rejected([CREATED, HUNDRED, closed], pb.RedeemLoyaltyPoints(points=10, reference="order-1"),
                           PRECONDITION, "already refunded")

    def test_reference_too_long(self):
        self.then_rejected([CREATED, HUNDRED], pb.RedeemLoyaltyPoints(points=10, reference="r" * (logic.MAX_REFERENCE + 1)),
                           INVALID, "reference")

    def test_refund_gives_back_exactly_what_was_taken(self):
        self.then_events([CREATED, HUNDRED, REDEEMED30], pb.RefundLoyaltyPoints(reference="order-1", reason="order cancelled"),
                         pb.LoyaltyPointsRefunded(reference="order-1", points=30, new_balance=100, reason="order cancelled"))

    def test_refund_of_another_reference_gives_nothing(self):
        self.then_events([CREATED, HUNDRED, REDEEMED30], pb.RefundLoyaltyPoints(reference="order-2"),
                         pb.LoyaltyPointsRefunded(reference="order-2", points=0, new_balance=70))

    def test_refund_to_a_customer_with_0_points_mints_none(self):
        self.then_events([CREATED], pb.RefundLoyaltyPoints(reference="order-1"),
                         pb.LoyaltyPointsRefunded(reference="order-1", points=0, new_balance=0))

    def test_a_second_refund_changes_nothing(self):
        back = pb.LoyaltyPointsRefunded(reference="order-1", points=30, new_balance=100)
        self.then_events([CREATED, HUNDRED, REDEEMED30, back], pb.RefundLoyaltyPoints(reference="order-1"))

    def test_a_redemption_without_reference_is_not_refundable(self):
        self.then_events([CREATED, HUNDRED, pb.LoyaltyPointsRedeemed(points=30, new_balance=70)],
                         pb.RefundLoyaltyPoints(reference="order-1"),
                         pb.LoyaltyPointsRefunded(reference="order-1", points=0, new_balance=70))

    def test_refund_without_reference(self):
        self.then_rejected([CREATED, HUNDRED, REDEEMED30], pb.RefundLoyaltyPoints(), INVALID, "reference")

    def test_refund_to_a_missing_customer(self):
        self.then_rejected([], pb.RefundLoyaltyPoints(reference="order-1"), PRECONDITION, "does not exist")

    def test_refunds_never_raise_lifetime_points(self):
        back = pb.LoyaltyPointsRefunded(reference="order-1", points=30, new_balance=100)
        self.then_events([CREATED, HUNDRED, REDEEMED30, back], pb.AddLoyaltyPoints(points=1),
                         pb.LoyaltyPointsAdded(points=1, new_balance=101, new_lifetime_points=101))


class LifetimeTest(Case):
    def test_redemptions_never_lower_lifetime_points(self):
        """+100, +50, -30 as commands: balance 120, lifetime 150."""
        agg, history = logic.logic(), [CREATED]
        for cmd in [pb.AddLoyaltyPoints(points=100), pb.AddLoyaltyPoints(points=50), pb.RedeemLoyaltyPoints(points=30)]:
            for page in agg.handle(contextual(history, cmd)).pages:
                history.append(agg.unpack_event(page.event))
        state = agg.rebuild(contextual(history, pb.AddLoyaltyPoints(points=1)).events)
        self.assertEqual((state.loyalty_points, state.lifetime_points), (120, 150))


class RunnerTest(Case):
    def test_state_from_a_snapshot(self):
        self.then_events(
            [pb.LoyaltyPointsAdded(points=5, new_balance=105, new_lifetime_points=205)],
            pb.AddLoyaltyPoints(points=1),
            pb.LoyaltyPointsAdded(points=1, new_balance=106, new_lifetime_points=206),
            snapshot=pb.CustomerState(name="Ann", email="a@x", loyalty_points=100, lifetime_points=200),
            snapshot_sequence=7)

    def test_snapshot_every_50_events(self):
        """The command that takes the history past 50 events answers the
        state after it as snapshot_state; the one before does not; a load
        from that snapshot rebuilds the same state."""
        added = [pb.LoyaltyPointsAdded(points=1, new_balance=i + 1, new_lifetime_points=i + 1) for i in range(48)]
        agg = logic.logic()
        book = agg.handle(contextual([CREATED] + added, pb.AddLoyaltyPoints(points=1)))  # sequence 49: 50 events
        self.assertTrue(book.HasField("snapshot_state"))
        state = pb.CustomerState()
        book.snapshot_state.Unpack(state)
        self.assertEqual((state.name, state.loyalty_points, state.lifetime_points), ("Ann", 49, 49))
        early = agg.handle(contextual([CREATED] + added[:-1], pb.AddLoyaltyPoints(points=1)))  # sequence 48
        self.assertFalse(early.HasField("snapshot_state"))
        after = agg.handle(contextual([], pb.AddLoyaltyPoints(points=2), snapshot=state, snapshot_sequence=50))
        self.assertFalse(after.HasField("snapshot_state"))
        again = pb.LoyaltyPointsAdded()
        after.pages[0].event.Unpack(again)
        self.assertEqual((again.new_balance, again.new_lifetime_points), (51, 51))

    def test_unknown_command(self):
        self.then_rejected([], pb.CustomerCreated(name="x"), INVALID, "no handler")

    def test_no_pages_is_a_no_op(self):
        cc = contextual([CREATED], pb.AddLoyaltyPoints(points=1))
        del cc.command.pages[:]
        self.assertEqual(len(logic.logic().handle(cc).pages), 0)


if __name__ == "__main__":
    unittest.main()

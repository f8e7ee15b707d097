"""The customer domain's business logic: customers and their loyalty points."""
import gen_path  # noqa: F401  (puts the generated stubs on sys.path)
from aggregate import Aggregate, every_n, invalid, precondition
from examples import customer_pb2 as pb

DOMAIN = "customer"

# SNAPSHOT_EVERY is how many events apart the customer asks for snapshots:
# a busy customer collects points for years, and every load (every conflict
# retry included) would otherwise replay them all.
SNAPSHOT_EVERY = 50


def apply(state, event):
    """Folds one event into the state."""
    if isinstance(event, pb.CustomerCreated):
        state.name, state.email = event.name, event.email
    elif isinstance(event, pb.LoyaltyPointsAdded):
        state.loyalty_points, state.lifetime_points = event.new_balance, event.new_lifetime_points
    elif isinstance(event, pb.LoyaltyPointsRedeemed):
        state.loyalty_points = event.new_balance
        if event.reference:
            state.redeemed[event.reference] = event.points
    elif isinstance(event, pb.LoyaltyPointsRefunded):
        state.loyalty_points = event.new_balance
        state.redeemed.pop(event.reference, None)
        state.refunded.append(event.reference)


def exists(state):
    return state.name != ""


def create(state, cmd):
    if exists(state):
        raise precondition("customer already exists")
    if not cmd.name:
        raise invalid("customer name is required")
    if not cmd.email:
        raise invalid("customer email is required")
    return [pb.CustomerCreated(name=cmd.name, email=cmd.email)]


def add_points(state, cmd):
    if not exists(state):
        raise precondition("customer does not exist")
    if cmd.points <= 0:
        raise invalid("points must be positive, got %d" % cmd.points)
    return [pb.LoyaltyPointsAdded(
        points=cmd.points,
        new_balance=state.loyalty_points + cmd.points,
        reason=cmd.reason,
        new_lifetime_points=state.lifetime_points + cmd.points,
    )]


# MAX_REFERENCE is the longest redemption reference accepted, in bytes.
MAX_REFERENCE = 200


def redeem_points(state, cmd):
    if not exists(state):
        raise precondition("customer does not exist")
    if cmd.points <= 0:
        raise invalid("points must be positive, got %d" % cmd.points)
    if len(cmd.reference.encode()) > MAX_REFERENCE:
        raise invalid("reference is longer than %d bytes" % MAX_REFERENCE)
    if cmd.reference and cmd.reference in state.redeemed:
        raise precondition("points already redeemed under reference %r" % cmd.reference)
    if cmd.reference and cmd.reference in state.refunded:
        raise precondition("reference %r was already refunded" % cmd.reference)
    if cmd.points > state.loyalty_points:
        raise precondition("insufficient points: balance %d, asked %d" % (state.loyalty_points, cmd.points))
    return [pb.LoyaltyPointsRedeemed(
        points=cmd.points,
        new_balance=state.loyalty_points - cmd.points,
        redemption_type=cmd.redemption_type,
        reference=cmd.reference,
    )]


def refund_points(state, cmd):
    """Gives back exactly what was redeemed under the reference, or nothing,
    and closes it (a later redemption under it is refused); a second refund
    changes nothing."""
    if not exists(state):
        raise precondition("customer does not exist")
    if not cmd.reference:
        raise invalid("a refund needs the reference of the redemption")
    if len(cmd.reference.encode()) > MAX_REFERENCE:
        raise invalid("reference is longer than %d bytes" % MAX_REFERENCE)
    if cmd.reference in state.refunded:
        return []  # already given back
    points = state.redeemed.get(cmd.reference, 0)
    return [pb.LoyaltyPointsRefunded(
        reference=cmd.reference,
        points=points,
        new_balance=state.loyalty_points + points,
        reason=cmd.reason,
    )]


def logic():
    """The customer domain's business logic."""
    return Aggregate(
        DOMAIN,
        pb.CustomerState,
        apply,
        {pb.CreateCustomer: create, pb.AddLoyaltyPoints: add_points, pb.RedeemLoyaltyPoints: redeem_points,
         pb.RefundLoyaltyPoints: refund_points},
        [pb.CustomerCreated, pb.LoyaltyPointsAdded, pb.LoyaltyPointsRedeemed, pb.LoyaltyPointsRefunded],
        snapshot=every_n(SNAPSHOT_EVERY),
    )

//! The flag words that describe a name: NB_FLAGS of an ADDR_ENTRY and NAME_FLAGS of a node
//! status entry, with the owner node type they share (RFC 1002 4.2.2, 4.2.18).

use std::fmt;

/// NB_FLAGS / NAME_FLAGS bit: the name is a group name (RFC 1002 4.2.2, 4.2.18).
const FLAG_GROUP: u16 = 0x8000;
/// NB_FLAGS / NAME_FLAGS owner node type field (RFC 1002 4.2.2).
const ONT_MASK: u16 = 0x6000;
/// NAME_FLAGS: the name is being released (RFC 1002 4.2.18).
const NAME_FLAG_DEREGISTERING: u16 = 0x1000;
/// NAME_FLAGS: a conflict was detected for the name (RFC 1002 4.2.18).
const NAME_FLAG_CONFLICT: u16 = 0x0800;
/// NAME_FLAGS: the name is active; always set (RFC 1002 4.2.18).
const NAME_FLAG_ACTIVE: u16 = 0x0400;
/// NAME_FLAGS: the permanent node name (RFC 1002 4.2.18).
const NAME_FLAG_PERMANENT: u16 = 0x0200;

/// Owner node type, the ONT field of NB_FLAGS and NAME_FLAGS (RFC 1002 4.2.2; H is
/// Microsoft's use of the value the RFC reserves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeType {
    /// Broadcast node: no WINS server.
    B,
    /// Point-to-point node: WINS only.
    P,
    /// Mixed node: broadcast first, then WINS.
    M,
    /// Hybrid node: WINS first, then broadcast.
    H,
}

impl NodeType {
    /// The ONT bits in place (0x0000, 0x2000, 0x4000 or 0x6000).
    pub const fn bits(self) -> u16 {
        match self {
            Self::B => 0x0000,
            Self::P => 0x2000,
            Self::M => 0x4000,
            Self::H => 0x6000,
        }
    }

    /// The node type in the ONT bits of a flags word.
    pub const fn from_flags(flags: u16) -> Self {
        match flags & ONT_MASK {
            0x0000 => Self::B,
            0x2000 => Self::P,
            0x4000 => Self::M,
            _ => Self::H,
        }
    }
}

/// NB_FLAGS of an ADDR_ENTRY (RFC 1002 4.2.2): group bit and owner node type. Kept as the raw
/// word so that reserved bits survive a round trip.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NbFlags(pub u16);

impl NbFlags {
    /// Flags for a name of the given kind owned by a node of `node_type`.
    pub const fn new(group: bool, node_type: NodeType) -> Self {
        Self(if group { FLAG_GROUP } else { 0 } | node_type.bits())
    }

    /// Whether the name is a group name.
    pub const fn is_group(self) -> bool {
        self.0 & FLAG_GROUP != 0
    }

    /// The owner's node type.
    pub const fn node_type(self) -> NodeType {
        NodeType::from_flags(self.0)
    }
}

impl fmt::Debug for NbFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "NbFlags({:#06x} {} {:?})",
            self.0,
            if self.is_group() { "group" } else { "unique" },
            self.node_type()
        )
    }
}

/// NAME_FLAGS of a node status entry (RFC 1002 4.2.18). Kept as the raw word.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NameFlags(pub u16);

impl NameFlags {
    /// An active name (ACT is always set) of the given kind on a node of `node_type`.
    pub const fn active(group: bool, node_type: NodeType) -> Self {
        Self(NbFlags::new(group, node_type).0 | NAME_FLAG_ACTIVE)
    }

    /// The same flags with CNF set: the name is in conflict.
    #[must_use]
    pub const fn with_conflict(self) -> Self {
        Self(self.0 | NAME_FLAG_CONFLICT)
    }

    /// The same flags with DRG set: the name is being released.
    #[must_use]
    pub const fn with_deregistering(self) -> Self {
        Self(self.0 | NAME_FLAG_DEREGISTERING)
    }

    /// The same flags with PRM set: the permanent node name.
    #[must_use]
    pub const fn with_permanent(self) -> Self {
        Self(self.0 | NAME_FLAG_PERMANENT)
    }

    /// G: a group name.
    pub const fn is_group(self) -> bool {
        self.0 & FLAG_GROUP != 0
    }

    /// ONT: the owner's node type.
    pub const fn node_type(self) -> NodeType {
        NodeType::from_flags(self.0)
    }

    /// DRG: being released.
    pub const fn is_deregistering(self) -> bool {
        self.0 & NAME_FLAG_DEREGISTERING != 0
    }

    /// CNF: in conflict.
    pub const fn is_conflict(self) -> bool {
        self.0 & NAME_FLAG_CONFLICT != 0
    }

    /// ACT: active.
    pub const fn is_active(self) -> bool {
        self.0 & NAME_FLAG_ACTIVE != 0
    }

    /// PRM: the permanent node name.
    pub const fn is_permanent(self) -> bool {
        self.0 & NAME_FLAG_PERMANENT != 0
    }
}

impl fmt::Debug for NameFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameFlags({:#06x}", self.0)?;
        for (set, label) in [
            (self.is_group(), "G"),
            (self.is_deregistering(), "DRG"),
            (self.is_conflict(), "CNF"),
            (self.is_active(), "ACT"),
            (self.is_permanent(), "PRM"),
        ] {
            if set {
                write!(f, " {label}")?;
            }
        }
        write!(f, " {:?})", self.node_type())
    }
}

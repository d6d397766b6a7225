//! The closed vocabularies of the field model: outcomes, flags, needs, items and statuses.
//!
//! Each value is stored in documents and CSV files as its kebab-case name; parsing an unknown
//! name is an [`UnknownValue`] error rather than a silent default.

use std::fmt;
use std::str::FromStr;

/// A string that is not one of an enum's names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} value {value:?}")]
pub struct UnknownValue {
    /// Which vocabulary was being parsed (e.g. `visit outcome`).
    pub kind: &'static str,
    /// The offending text, truncated to 80 characters.
    pub value: String,
}

macro_rules! closed_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $label:literal {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored name of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownValue;
            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { kind: $label, value: s.chars().take(80).collect() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

closed_enum! {
    /// What happened at the door.
    VisitOutcome, "visit outcome" {
        /// Someone answered and was talked to.
        Contacted => "contacted",
        /// Nobody answered.
        NotHome => "not-home",
        /// Someone answered and declined.
        Refused => "refused",
        /// The household no longer lives there.
        MovedOut => "moved-out",
        /// The unit is empty (no household at all).
        Vacant => "vacant",
    }
}

closed_enum! {
    /// A vulnerability that makes a household a priority.
    SpecialNeed, "special-needs flag" {
        ElderlyLivingAlone => "elderly-living-alone",
        Child => "child",
        Pregnant => "pregnant",
        Disability => "disability",
        ChronicIllness => "chronic-illness",
    }
}

closed_enum! {
    /// Something a household asked for during a visit.
    NeedKind, "need" {
        Medicine => "medicine",
        MedicalTrip => "medical-trip",
        Food => "food",
        Water => "water",
        BabySupplies => "baby-supplies",
        Hygiene => "hygiene",
        Counselling => "counselling",
        Other => "other",
    }
}

closed_enum! {
    /// A thing delivered to a household, one line of its delivery checklist.
    DeliveryItem, "delivery item" {
        FoodPack => "food-pack",
        Medicine => "medicine",
        Water => "water",
        BabySupplies => "baby-supplies",
        HygieneKit => "hygiene-kit",
        TestKit => "test-kit",
        Other => "other",
    }
}

closed_enum! {
    /// The status one delivery event reports for one checklist item.
    DeliveryStatus, "delivery status" {
        /// Put on the household's checklist.
        Requested => "requested",
        /// A volunteer is on the way with it.
        OutForDelivery => "out-for-delivery",
        /// Handed over. Dominates every other status (see the crate's merge rules).
        Delivered => "delivered",
        /// An attempt failed; kept as history, a retry is a new event.
        Failed => "failed",
        /// No longer needed.
        Cancelled => "cancelled",
    }
}

closed_enum! {
    /// The epidemic-control zone a household lies in.
    Zone, "zone" {
        Lockdown => "lockdown",
        Control => "control",
        Prevention => "prevention",
    }
}

closed_enum! {
    /// Which map of a building document a record lives in.
    RecordKind, "record kind" {
        Visit => "visit",
        Delivery => "delivery",
        Sweep => "sweep",
        Correction => "correction",
    }
}

impl NeedKind {
    /// The delivery item whose delivery closes this need, if there is one.
    pub fn fulfilled_by(self) -> Option<DeliveryItem> {
        match self {
            NeedKind::Medicine => Some(DeliveryItem::Medicine),
            NeedKind::Food => Some(DeliveryItem::FoodPack),
            NeedKind::Water => Some(DeliveryItem::Water),
            NeedKind::BabySupplies => Some(DeliveryItem::BabySupplies),
            NeedKind::Hygiene => Some(DeliveryItem::HygieneKit),
            NeedKind::MedicalTrip | NeedKind::Counselling | NeedKind::Other => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_errors() {
        for v in VisitOutcome::ALL {
            assert_eq!(v.as_str().parse::<VisitOutcome>(), Ok(*v));
        }
        for v in DeliveryStatus::ALL {
            assert_eq!(v.as_str().parse::<DeliveryStatus>(), Ok(*v));
        }
        for v in NeedKind::ALL {
            assert_eq!(v.as_str().parse::<NeedKind>(), Ok(*v));
        }
        let err = "exploded"
            .parse::<VisitOutcome>()
            .expect_err("not an outcome");
        assert_eq!(err.kind, "visit outcome");
        assert!("Lockdown".parse::<Zone>().is_err());
        assert!("".parse::<SpecialNeed>().is_err());
    }
}

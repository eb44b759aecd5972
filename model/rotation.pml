/*
 * Root key rotation between gatekeepers (docs/eras.md, paper section 4.7).
 *
 * One rotation, era n-1 -> era n. Checked by model/check.sh; what is
 * modelled, what is abstracted, the assumption and the figures are in
 * docs/eras.md, "The model".
 *
 * Workers (pRuntimes) are numbered 0..NW-1:
 *   G_{n-1} = {0,1,2} holds the old root key k_r^(n-1).
 *   The candidates for G_n, in election rank order, are FIRSTCAND ..
 *   FIRSTCAND+NCAND-1; the election seats the first NSEAT that are not
 *   excluded (sequential Phragmen abstracted as a fixed ranking). Like
 *   chain/gatekeeper/rotation.go, fewer candidates than seats elect a
 *   smaller set, and none at all ends the rotation: G_{n-1} keeps its key.
 *   Default: candidates 2..6, the first G_n is {2,3,4} and overlaps
 *   G_{n-1} in one member, 2. With -DDISJOINT: candidates 3..7, the first
 *   G_n is {3,4,5}, disjoint from G_{n-1}. Two spare candidates let the
 *   chain re-elect after exclusions.
 *
 * Root keys are integers: OLDKEY (1) is k_r^(n-1); KEY(a) = 2+a is the key
 * of era n made in attempt a (a distinct key per attempt); 0 is no key.
 *
 * Switches:
 *   DISJOINT    G_n disjoint from G_{n-1}
 *   TIMELY      the deadline fires only when the attempt is stuck on
 *               unresponsive participants (for the liveness claims d, e);
 *               without it, at any time before Ready
 *   MAXATT      attempts modelled (default 3: attempts 0, 1, 2); the
 *               deadline of the last one never fires
 *   MAXCRASH    crashes in a run (default MAXATT-1)
 * Mutants (deliberate bugs; check.sh requires each to break a claim):
 *   BUG_ERASE_EARLY           G_{n-1} erase k_r^(n-1) once the re-encrypted
 *                             state is complete on chain, not at Ready
 *   BUG_READY_EARLY           the state counts as complete once any part is
 *                             in: Ready before every key is re-encrypted
 *   BUG_RESUME_EARLY          the deadline resumes key traffic, and only the
 *                             era-boundary start pauses it
 *   BUG_DEADLINE_AFTER_READY  Ready does not cancel the deadline: an expiry
 *                             after Ready restarts the era's rotation
 *   BUG_EXCLUDED_LEADER       l_{n-1} is drawn from all of G_{n-1}, ignoring
 *                             exclusions
 *   BUG_STALE_CONFIRM         the chain counts a member's confirmation
 *                             whatever root key it names
 */

#ifndef MAXATT
#define MAXATT 3
#endif
#ifndef MAXCRASH
#define MAXCRASH (MAXATT-1)
#endif

#define NSEAT 3           /* n_gatekeepers */
#define NOLD  3           /* |G_{n-1}| */
#define NCAND 5           /* candidates for G_n: NSEAT + 2 spares */
#define NKEYS 2           /* stored contract keys, one RotationState part each */

#ifdef DISJOINT
#define FIRSTCAND 3
#define NW 8
#define OVER_W(F, OP) (F(0) OP F(1) OP F(2) OP F(3) OP F(4) OP F(5) OP F(6) OP F(7))
#else
#define FIRSTCAND 2
#define NW 7
#define OVER_W(F, OP) (F(0) OP F(1) OP F(2) OP F(3) OP F(4) OP F(5) OP F(6))
#endif
#define OVER_C(F, OP) (F(FIRSTCAND) OP F(FIRSTCAND+1) OP F(FIRSTCAND+2) OP F(FIRSTCAND+3) OP F(FIRSTCAND+4))

#define OLDKEY 1
#define KEY(a) (2 + (a))

#define BIT(w)     (1 << (w))
#define IN(set, w) ((((set) >> (w)) & 1) == 1)
#define OLDSET     7      /* G_{n-1} = BIT(0)|BIT(1)|BIT(2) */
#define ISOLD(w)   ((w) < NOLD)

mtype = { NONE, SHARE, KEYS, STATE, CONFIRM };

/* ------------------------------------------------------------ chain state */
bool started;             /* RotationStarted for era n was emitted */
bool rotating;            /* an attempt is in progress */
bool ready;               /* RotationReady for era n was emitted */
bool abandoned;           /* no candidate left: the rotation ended without Ready */
byte attempt;
byte gn;                  /* G_n of the current attempt (bitmask) */
byte lold, lnew;          /* l_{n-1}, l_n */
bool share_out, share_in; /* RotationShare of l_{n-1}, of l_n, accepted */
byte announced;           /* root public key of RotationKeys; 0 none */
byte aside[NKEYS];        /* gatekeeper/rotkey/<c>: root key the new copy is wrapped under; 0 none */
byte confirmed;           /* members of G_n whose RotationConfirm was accepted */
byte excluded;            /* excluded from elections for unresponsiveness */
byte seated = OLDSET;     /* EraState.gatekeepers */
byte wrapped[NKEYS] = OLDKEY; /* root key each stored contract key is wrapped under */
byte accepted;            /* root key accepted (Ready) for era n; 0 none */
bool conflict;            /* a second, different root key was accepted for era n */
bool traffic = 1;         /* ContractKey messages are processed (not paused) */

/* ------------------------------------------------------------ pRuntimes */
bool up[NW] = 1;          /* responsive; a crash (or stall) is for good */
byte cur[NW];             /* root key in use; 0 none */
byte nxt[NW];             /* rotation key k_r^(n) held (derived or opened); 0 none */
byte ncrash;
bool booted;              /* init has given G_{n-1} its key (claims start here) */

/* ------------------------------------------------------------ miner state */
bool miner_got;           /* the miner obtained a contract key */
bool miner_got_in_rotation; /* ... while a rotation was in progress */

/* ------------------------------------------------------------ predicates */
#define HOLDS(w, k)   (cur[w] == (k) || nxt[w] == (k))
#define UP_HOLDS0(w)  (up[w] && HOLDS(w, wrapped[0]))
#define UP_HOLDS1(w)  (up[w] && HOLDS(w, wrapped[1]))

#ifdef BUG_READY_EARLY
#define COMPLETE (aside[0] != 0 || aside[1] != 0)
#else
#define COMPLETE (aside[0] != 0 && aside[1] != 0)
#endif
/* a member's check: each re-encrypted key on chain opens under k */
#define OPENS(k) ((aside[0] == 0 || aside[0] == (k)) && (aside[1] == 0 || aside[1] == (k)))

#define FAILED(w)    (!up[w])
#define UP_IN_GN(w)  (IN(gn, w) && up[w])
#define CONF_DONE(w) (!IN(gn, w) || IN(confirmed, w) || FAILED(w))
#define NOT_EXCL(w)  (!IN(excluded, w))
#define ENOUGH       (OVER_C(NOT_EXCL, +) >= 1)   /* someone can be elected */

/* The attempt cannot progress: each participant whose step is missing
 * has failed (the responsive ones did all they could). */
#define STUCK ( \
  (!(share_out && share_in) && (share_out || FAILED(lold)) && (share_in || FAILED(lnew))) || \
  (share_out && share_in && !(announced != 0 && COMPLETE) && \
     (announced != 0 || FAILED(lnew)) && (COMPLETE || FAILED(lold))) || \
  (share_out && share_in && announced != 0 && COMPLETE && OVER_W(CONF_DONE, &&)) )

/* Assumption A: not every member of a set crashes. A worker may crash
 * only while G_{n-1}, and the G_n of the current attempt, keep another
 * responsive member; at most MAXCRASH crash in all. Only members of these
 * sets crash: another worker holds no key and takes no step, so its crash
 * is the same as one at the start of an attempt that seats it. */
#define CRASH_OK(w) (ncrash < MAXCRASH && (ISOLD(w) || IN(gn, w)) && \
  (!ISOLD(w) || up[0] + up[1] + up[2] >= 2) && \
  (!IN(gn, w) || OVER_W(UP_IN_GN, +) >= 2))

/* ------------------------------------------------------------ claims */
/* (a) at most one root key is accepted (Ready) for era n */
#define PROP_A (!conflict)
/* (b) no loss: the root key each stored contract key is wrapped under is
 *     held, not erased, by a responsive pRuntime (under assumption A) */
#define PROP_B (!booted || (OVER_W(UP_HOLDS0, ||) && OVER_W(UP_HOLDS1, ||)))
/* (c) key traffic only outside a rotation; once paused, only Ready (or
 *     the end of a rotation nobody can be elected for) resumes it; a miner
 *     never gets a key while a rotation is in progress */
#define PROP_C ((!traffic || (!rotating && (!started || ready || abandoned))) && !miner_got_in_rotation)

ltl safety    { [] (PROP_A && PROP_B && PROP_C) }
ltl a_one_key { [] PROP_A }
ltl b_no_loss { [] PROP_B }
ltl c_traffic { [] PROP_C }

/* (d) liveness (TIMELY): the rotation reaches Ready */
ltl d_ready { <> ready }

/* (e) an unresponsive leader (crashed, its step missing) leads to an
 *     expired attempt and a restart (TIMELY) */
#define LEADER_DOWN(a) (rotating && attempt == (a) && \
  ((FAILED(lold) && (!share_out || !COMPLETE)) || \
   (FAILED(lnew) && (!share_in || announced == 0))))
ltl e_restart { [] (LEADER_DOWN(0) -> <> (rotating && attempt == 1)) &&
                [] (LEADER_DOWN(1) -> <> (rotating && attempt == 2)) }

/* Witnesses: claims that must FAIL in the correct model, so the checks
 * above are not vacuous. Ready is reached in the last attempt after
 * crashes, and with a G_n smaller than NSEAT; a rotation is abandoned; a
 * leader goes down in attempt 0 or 1. */
#define IN_GN(w) IN(gn, w)
ltl w_ready_last { [] !(ready && attempt == MAXATT - 1 && ncrash > 0) }
ltl w_small_set { [] !(ready && OVER_W(IN_GN, +) < NSEAT) }
ltl w_abandon { [] !abandoned }
ltl w_leader_down { [] !(LEADER_DOWN(0) || LEADER_DOWN(1)) }

/* ------------------------------------------------------------ chain */

/* Step 1. G_n: the first NSEAT non-excluded candidates in rank order (fewer
 * if fewer are left). Leaders: any allowed choice (the seed, and what a
 * block proposer can do to it, is abstracted as nondeterminism). Callers
 * check ENOUGH first. */
inline start_attempt() {
  gn = 0; w = FIRSTCAND;
  do
  :: w < FIRSTCAND + NCAND && cnt < NSEAT ->
     if
     :: NOT_EXCL(w) -> gn = gn | BIT(w); cnt++
     :: else -> skip
     fi;
     w++
  :: else -> break
  od;
  w = 0; cnt = 0;
#ifdef BUG_EXCLUDED_LEADER
  if
  :: lold = 0
  :: lold = 1
  :: lold = 2
  fi;
#else
  if
  :: NOT_EXCL(0) || (excluded & OLDSET) == OLDSET -> lold = 0
  :: NOT_EXCL(1) || (excluded & OLDSET) == OLDSET -> lold = 1
  :: NOT_EXCL(2) || (excluded & OLDSET) == OLDSET -> lold = 2
  fi;
#endif
  /* l_n: G_n minus l_{n-1}; l_{n-1} itself if it is the only member */
  if
  :: IN(gn, FIRSTCAND)   && lold != FIRSTCAND   -> lnew = FIRSTCAND
  :: IN(gn, FIRSTCAND+1) && lold != FIRSTCAND+1 -> lnew = FIRSTCAND+1
  :: IN(gn, FIRSTCAND+2) && lold != FIRSTCAND+2 -> lnew = FIRSTCAND+2
  :: IN(gn, FIRSTCAND+3) && lold != FIRSTCAND+3 -> lnew = FIRSTCAND+3
  :: IN(gn, FIRSTCAND+4) && lold != FIRSTCAND+4 -> lnew = FIRSTCAND+4
  :: gn == BIT(lold) -> lnew = lold
  fi;
  share_out = 0; share_in = 0; announced = 0;
  aside[0] = 0; aside[1] = 0; confirmed = 0;
  rotating = 1;
#ifdef BUG_RESUME_EARLY
  if
  :: !started -> traffic = 0
  :: else -> skip
  fi;
#else
  traffic = 0;            /* key traffic is paused */
#endif
  started = 1
}

/* Step 6. */
inline rotation_ready() {
  if
  :: accepted != 0 && accepted != announced -> conflict = 1
  :: else -> skip
  fi;
  accepted = announced;
  if :: aside[0] != 0 -> wrapped[0] = aside[0] :: else -> skip fi;
  if :: aside[1] != 0 -> wrapped[1] = aside[1] :: else -> skip fi;
  seated = gn;
  ready = 1; rotating = 0;
  traffic = 1             /* key traffic resumes */
}

#define UNRESP_FAILED(w) (!IN(unresp, w) || FAILED(w))

/* Step 7: mark the unresponsive exactly as docs/eras.md says; exclude them. */
inline expire() {
  unresp = 0;
  if :: !share_out -> unresp = unresp | BIT(lold) :: else -> skip fi;
  if :: !share_in  -> unresp = unresp | BIT(lnew) :: else -> skip fi;
  if
  :: share_out && share_in ->
     if :: announced == 0 -> unresp = unresp | BIT(lnew) :: else -> skip fi;
     if :: !COMPLETE -> unresp = unresp | BIT(lold) :: else -> skip fi;
     if
     :: announced != 0 && COMPLETE -> unresp = unresp | (gn & (255 - confirmed))
     :: else -> skip
     fi
  :: else -> skip
  fi;
#ifdef TIMELY
  assert(OVER_W(UNRESP_FAILED, &&));  /* only failed workers are marked */
#endif
  excluded = excluded | unresp;
  unresp = 0;
  /* The key of an expired attempt wraps nothing the chain keeps (the aside
   * copies are dropped at the restart); pRuntimes drop it. */
  nxt[0] = 0; nxt[1] = 0; nxt[2] = 0; nxt[3] = 0; nxt[4] = 0; nxt[5] = 0; nxt[6] = 0;
#ifdef DISJOINT
  nxt[7] = 0;
#endif
  rotating = 0;
#ifdef BUG_RESUME_EARLY
  traffic = 1;
#endif
  attempt++
}

/* A transaction (kind K, made for attempt A, naming root key KV, contract
 * P) of worker X is included in a block: the chain's checks. Whatever
 * fails them is ignored. */
inline deliver(X, K, A, KV, P) {
  if
  :: K == SHARE ->
     if
     :: rotating && A == attempt && X == lold && !share_out -> share_out = 1
     :: rotating && A == attempt && X == lnew && !share_in  -> share_in = 1
     :: else -> skip
     fi
  :: K == KEYS ->
     if
     :: rotating && A == attempt && X == lnew && share_out && share_in && announced == 0 ->
        announced = KV
     :: else -> skip
     fi
  :: K == STATE ->
     if
     :: rotating && A == attempt && X == lold && share_out && share_in && aside[P] == 0 ->
        aside[P] = KV
     :: else -> skip
     fi
  :: K == CONFIRM ->
     if
#ifdef BUG_STALE_CONFIRM
     :: rotating && IN(gn, X) && announced != 0 && COMPLETE && !IN(confirmed, X) ->
#else
     :: rotating && IN(gn, X) && announced != 0 && KV == announced && COMPLETE && !IN(confirmed, X) ->
#endif
        confirmed = confirmed | BIT(X);
        if
        :: (confirmed & gn) == gn -> rotation_ready()
        :: else -> skip
        fi
     :: else -> skip
     fi
  fi
}

#ifdef TIMELY
#define DEADLINE_OK (rotating && attempt < MAXATT - 1 && STUCK)
#elif defined(BUG_DEADLINE_AFTER_READY)
#define DEADLINE_OK ((rotating || ready) && attempt < MAXATT - 1)
#else
#define DEADLINE_OK (rotating && attempt < MAXATT - 1)
#endif

active proctype chain() {
  byte w, cnt, unresp;
  /* genesis of the model: G_{n-1} holds k_r^(n-1); the others start */
  atomic {
    cur[0] = OLDKEY; cur[1] = OLDKEY; cur[2] = OLDKEY;
    booted = 1;
    run miner();
    run gatekeeper(0); run gatekeeper(1); run gatekeeper(2);
    run gatekeeper(3); run gatekeeper(4); run gatekeeper(5);
    run gatekeeper(6);
#ifdef DISJOINT
    run gatekeeper(7);
#endif
  }
end:
  do
  /* end of the last block of era n-1 */
  :: atomic { !started && ENOUGH -> start_attempt() }
  /* end of block `deadline` without Ready: expire and restart at once; with
   * nobody left to elect, the rotation ends and G_{n-1} keeps the key */
  :: atomic { DEADLINE_OK ->
       expire();
       if
       :: ENOUGH -> start_attempt()
       :: else -> abandoned = 1; traffic = 1
       fi }
  /* A late transaction, made for the previous attempt, is included: a
   * share, the distribution or a part of the state, signed by a current
   * leader, or a confirmation by a current member, naming the previous
   * attempt's key. The senders are today's participants, so only the
   * chain's attempt and key checks stand in the way. They must ignore it:
   * then this step changes nothing. Left out of TIMELY runs: weak fairness
   * is per process, and this self-loop could starve the deadline. */
#ifndef TIMELY
  :: atomic { rotating && attempt > 0 ->
       if
       :: deliver(lold, SHARE, attempt - 1, 0, 0)
       :: deliver(lnew, SHARE, attempt - 1, 0, 0)
       :: deliver(lnew, KEYS, attempt - 1, KEY(attempt - 1), 0)
       :: deliver(lold, STATE, attempt - 1, KEY(attempt - 1), 0)
       :: deliver(lold, STATE, attempt - 1, KEY(attempt - 1), 1)
       :: IN(gn, FIRSTCAND)   -> deliver(FIRSTCAND,   CONFIRM, attempt - 1, KEY(attempt - 1), 0)
       :: IN(gn, FIRSTCAND+1) -> deliver(FIRSTCAND+1, CONFIRM, attempt - 1, KEY(attempt - 1), 0)
       :: IN(gn, FIRSTCAND+2) -> deliver(FIRSTCAND+2, CONFIRM, attempt - 1, KEY(attempt - 1), 0)
       :: IN(gn, FIRSTCAND+3) -> deliver(FIRSTCAND+3, CONFIRM, attempt - 1, KEY(attempt - 1), 0)
       :: IN(gn, FIRSTCAND+4) -> deliver(FIRSTCAND+4, CONFIRM, attempt - 1, KEY(attempt - 1), 0)
       fi }
#endif
  od
}

/* ------------------------------------------------------------ gatekeeper */

/* g's root key once it has seen Ready */
#define FINAL(g) ((IN(seated, g) && HOLDS(g, accepted)) -> accepted : 0)

/* A gatekeeper's transaction is included in one atomic step with its
 * making (late ones are the chain's "late transaction" step). */
inline post(K, KV, P) {
  deliver(g, K, attempt, KV, P)
}

proctype gatekeeper(byte g) {
end:
  do
  /* step 2: a leader posts its share */
  :: atomic { up[g] && rotating &&
              ((g == lold && !share_out) || (g == lnew && !share_in)) ->
       post(SHARE, 0, 0) }
  /* steps 3-4: l_n derives k_r^(n) and distributes it, sealed to G_n */
  :: atomic { up[g] && rotating && g == lnew &&
              share_out && share_in && announced == 0 ->
       nxt[g] = KEY(attempt);
       post(KEYS, nxt[g], 0) }
  /* steps 3-4: l_{n-1} derives k_r^(n), unwraps the next stored key with
   * the root key it is wrapped under, posts it wrapped under k_r^(n) */
  :: atomic { up[g] && rotating && g == lold &&
              share_out && share_in && aside[0] == 0 && HOLDS(g, wrapped[0]) ->
       nxt[g] = KEY(attempt);
       post(STATE, nxt[g], 0) }
  :: atomic { up[g] && rotating && g == lold &&
              share_out && share_in && aside[0] != 0 && aside[1] == 0 && HOLDS(g, wrapped[1]) ->
       nxt[g] = KEY(attempt);
       post(STATE, nxt[g], 1) }
  /* steps 4-5: a member of G_n opens the key sealed to it, checks that the
   * state is complete and every re-encrypted key opens under it, confirms */
  :: atomic { up[g] && rotating && IN(gn, g) && !IN(confirmed, g) &&
              announced != 0 && COMPLETE && OPENS(announced) ->
       nxt[g] = announced;
       post(CONFIRM, nxt[g], 0) }
  /* step 6: on Ready, members switch to k_r^(n) and erase k_r^(n-1);
   * retired gatekeepers erase their root key; rotation material goes */
  :: atomic { up[g] && ready && !rotating && (cur[g] != FINAL(g) || nxt[g] != 0) ->
       cur[g] = FINAL(g); nxt[g] = 0 }
#ifdef BUG_ERASE_EARLY
  :: atomic { up[g] && ISOLD(g) && rotating && COMPLETE && cur[g] == OLDKEY ->
       cur[g] = 0 }
#endif
  /* crash or stall for good */
  :: atomic { up[g] && CRASH_OK(g) -> up[g] = 0; ncrash++ }
  od
}

/* ------------------------------------------------------------ miner */

/* A miner asks for a contract key at any time; while traffic is paused
 * the chain ignores the request (its gatekeeper queues it): no step. */
proctype miner() {
end:
  do
  :: atomic { traffic && (!miner_got || (rotating && !miner_got_in_rotation)) ->
       miner_got = 1;
       if :: rotating -> miner_got_in_rotation = 1 :: else -> skip fi }
  od
}

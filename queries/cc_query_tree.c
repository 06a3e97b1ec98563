/*
 * cc_query_tree.c: how a query's conditions combine (filters.nodes, the
 * "combine" key of docs/query-model.md): the checks every tree must pass,
 * its canonical form, and which conditions it negates.
 *
 * A tree names every condition exactly once, so a condition keeps its index
 * and "the cohort without condition i" is well defined: the tree with leaf i
 * removed, an AND or OR left without children removed in turn, a NOT whose
 * child is removed removed with it (cc_exec.h, cohort_without).
 *
 * The canonical form (what the decoder leaves and `carecount check` prints)
 * has no NOT of a NOT, no AND directly under an AND (nor OR under OR), no
 * AND or OR of one child, children ordered by the smallest condition index
 * they hold, no exclude flags (a NOT instead), and nodes in preorder from
 * the root at 0. A tree that is then an AND of conditions and NOTs of
 * conditions (or one of them) is written as no tree at all, with exclude
 * flags: the plain form of every query before trees, so one question has one
 * form.
 *
 * Must never: accept a tree the engine could loop on or misread (a node
 * index out of range, a cycle, a condition twice, deeper than the cap).
 */
#include "cc_query.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_query_internal.h"

static const char *op_name(int op)
{
    switch (op) {
    case CC_NODE_AND: return "and";
    case CC_NODE_OR: return "or";
    case CC_NODE_NOT: return "not";
    default: return "condition";
    }
}

/* Walks the subtree at node, counting each condition's leaves into seen[]
 * and checking shapes; depth is the number of operators above node. */
static int check_node(const struct cc_query_filters *f, uint32_t node, uint32_t depth,
                      uint32_t *n_visited, uint8_t *seen, char *errbuf, size_t errlen)
{
    if (node >= f->n_nodes)
        return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                             "node %u is not a node (the tree has %u)", node, f->n_nodes);
    /* a tree has at most n_nodes visits; more means a node is reached twice */
    if (++*n_visited > f->n_nodes)
        return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                             "a node is reached twice (the nodes must form a tree)");
    const struct cc_query_node *n = &f->nodes[node];
    switch (n->op) {
    case CC_NODE_CONDITION:
        if (n->condition >= f->n_conditions)
            return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                                 "%u is not a condition (the query has %u)", n->condition,
                                 f->n_conditions);
        if (seen[n->condition]++)
            return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                                 "condition %u appears twice (name each condition once; "
                                 "repeat it in the conditions to use it twice)",
                                 n->condition);
        return 0;
    case CC_NODE_AND:
    case CC_NODE_OR:
    case CC_NODE_NOT:
        if (depth >= CC_QUERY_COMBINE_DEPTH_CAP)
            return cc_query_fail(errbuf, errlen, CC_ETOOBIG, "filters.combine",
                                 "more than %d levels of and, or and not",
                                 CC_QUERY_COMBINE_DEPTH_CAP);
        if (n->op == CC_NODE_NOT ? n->n_children != 1 : n->n_children < 1)
            return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                                 "'%s' with %u operands", op_name(n->op), n->n_children);
        for (uint32_t i = 0; i < n->n_children; i++) {
            int rc = check_node(f, n->children[i], depth + 1, n_visited, seen, errbuf, errlen);
            if (rc)
                return rc;
        }
        return 0;
    default:
        return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                             "unknown operator %d", n->op);
    }
}

int cc_query_combine_check(const struct cc_query_filters *filters, bool allow_exclude,
                           char *errbuf, size_t errlen)
{
    if (!filters->n_nodes)
        return 0;
    if (!filters->n_conditions)
        return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                             "there are no conditions to combine");
    uint8_t seen[256] = {0};
    if (filters->n_conditions > sizeof seen)
        return cc_query_fail(errbuf, errlen, CC_ETOOBIG, "filters.conditions",
                             "too many conditions to combine");
    uint32_t n_visited = 0;
    int rc = check_node(filters, 0, 0, &n_visited, seen, errbuf, errlen);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < filters->n_conditions; i++) {
        if (!seen[i])
            return cc_query_fail(errbuf, errlen, CC_EINVAL, "filters.combine",
                                 "condition %u is not in the tree (name every condition once)",
                                 i);
        if (filters->conditions[i].exclude && !allow_exclude) {
            char field[48];
            snprintf(field, sizeof field, "filters.conditions[%u].exclude", i);
            return cc_query_fail(errbuf, errlen, CC_EINVAL, field,
                                 "with \"combine\", negate the condition in the tree (not)");
        }
    }
    return 0;
}

/* Is the leaf of condition i under an odd number of NOTs in the subtree? */
static int negated_in(const struct cc_query_filters *f, uint32_t node, uint32_t condition,
                      bool negated)
{
    const struct cc_query_node *n = &f->nodes[node];
    if (n->op == CC_NODE_CONDITION)
        return n->condition == condition ? negated : -1;
    for (uint32_t i = 0; i < n->n_children; i++) {
        int found = negated_in(f, n->children[i], condition, negated ^ (n->op == CC_NODE_NOT));
        if (found >= 0)
            return found;
    }
    return -1;
}

bool cc_query_condition_negated(const struct cc_query_filters *filters, uint32_t condition)
{
    if (condition >= filters->n_conditions)
        return false;
    if (!filters->n_nodes)
        return filters->conditions[condition].exclude;
    return negated_in(filters, 0, condition, false) == 1;
}

/* ---- the canonical form ---- */

/* Nodes being built: the old tree is read, a new one written after it. */
struct builder {
    struct cc_query *query;
    const struct cc_query_node *from;
    struct cc_query_node *to;
    uint32_t n, cap;
};

static uint32_t smallest_condition(const struct cc_query_node *nodes, uint32_t node)
{
    const struct cc_query_node *n = &nodes[node];
    if (n->op == CC_NODE_CONDITION)
        return n->condition;
    uint32_t least = UINT32_MAX;
    for (uint32_t i = 0; i < n->n_children; i++) {
        uint32_t c = smallest_condition(nodes, n->children[i]);
        least = c < least ? c : least;
    }
    return least;
}

static int add_node(struct builder *b, uint8_t op, uint32_t condition, uint32_t n_children,
                    uint32_t *out)
{
    if (b->n == b->cap)
        return CC_EINTERNAL; /* the caps above bound what a checked tree needs */
    struct cc_query_node *n = &b->to[b->n];
    n->op = op;
    n->condition = condition;
    n->n_children = n_children;
    n->children = n_children ? cc_query_alloc(b->query, n_children * sizeof *n->children) : NULL;
    if (n_children && !n->children)
        return CC_ENOMEM;
    *out = b->n++;
    return 0;
}

/* Writes the normal form of the old subtree at node (negated if asked) and
 * returns its new index in *out. */
static int normalise(struct builder *b, uint32_t node, bool negate, uint32_t *out)
{
    const struct cc_query_node *n = &b->from[node];
    int rc;
    if (n->op == CC_NODE_NOT)
        return normalise(b, n->children[0], !negate, out);
    uint32_t inner = 0;
    if (n->op == CC_NODE_CONDITION) {
        rc = add_node(b, CC_NODE_CONDITION, n->condition, 0, &inner);
    } else {
        /* children first, flattening same-operator children into this one */
        uint32_t kids[256], n_kids = 0;
        for (uint32_t i = 0; i < n->n_children; i++) {
            uint32_t k;
            if ((rc = normalise(b, n->children[i], false, &k)))
                return rc;
            const struct cc_query_node *child = &b->to[k];
            if (child->op == n->op) {
                for (uint32_t j = 0; j < child->n_children && n_kids < 256; j++)
                    kids[n_kids++] = child->children[j];
            } else if (n_kids < 256) {
                kids[n_kids++] = k;
            }
        }
        if (n_kids == 1) {
            inner = kids[0];
            rc = 0;
        } else {
            /* order by the smallest condition each child holds (each
             * condition is in one child, so the order is total) */
            for (uint32_t i = 1; i < n_kids; i++)
                for (uint32_t j = i; j > 0 && smallest_condition(b->to, kids[j]) <
                                                  smallest_condition(b->to, kids[j - 1]);
                     j--) {
                    uint32_t t = kids[j];
                    kids[j] = kids[j - 1];
                    kids[j - 1] = t;
                }
            if ((rc = add_node(b, n->op, 0, n_kids, &inner)) == 0)
                memcpy(b->to[inner].children, kids, n_kids * sizeof *kids);
        }
    }
    if (rc || !negate) {
        *out = inner;
        return rc;
    }
    if (b->to[inner].op == CC_NODE_NOT) { /* a NOT of a NOT cancels */
        *out = b->to[inner].children[0];
        return 0;
    }
    if ((rc = add_node(b, CC_NODE_NOT, 0, 1, out)) == 0)
        b->to[*out].children[0] = inner;
    return rc;
}

/* Copies the subtree at node of from into to in preorder. */
static int compact(struct builder *b, const struct cc_query_node *from, uint32_t node,
                   uint32_t *out)
{
    const struct cc_query_node *n = &from[node];
    int rc = add_node(b, n->op, n->condition, n->n_children, out);
    uint32_t self = *out;
    for (uint32_t i = 0; rc == 0 && i < n->n_children; i++) {
        uint32_t k;
        rc = compact(b, from, n->children[i], &k);
        b->to[self].children[i] = k;
    }
    return rc;
}

int cc_query_combine_canonicalise(struct cc_query *query)
{
    struct cc_query_filters *f = &query->filters;
    if (!f->n_nodes)
        return 0;
    /* exclude flags become NOTs: a tree speaks for every condition */
    /* the copy, a leaf per exclude, and at most two nodes per node after */
    uint32_t cap = 4 * (f->n_nodes + f->n_conditions) + 4;
    struct cc_query_node *work = cc_query_alloc(query, cap * sizeof *work);
    if (!work)
        return CC_ENOMEM;
    struct builder b = {.query = query, .from = work, .to = work, .n = 0, .cap = cap};
    for (uint32_t i = 0; i < f->n_nodes; i++)
        work[b.n++] = f->nodes[i];
    for (uint32_t i = 0; i < f->n_nodes; i++) {
        struct cc_query_node *n = &work[i];
        if (n->op != CC_NODE_CONDITION || !f->conditions[n->condition].exclude)
            continue;
        uint32_t leaf;
        int rc = add_node(&b, CC_NODE_CONDITION, n->condition, 0, &leaf);
        if (rc)
            return rc;
        n = &work[i];
        n->op = CC_NODE_NOT;
        n->n_children = 1;
        n->children = cc_query_alloc(query, sizeof *n->children);
        if (!n->children)
            return CC_ENOMEM;
        n->children[0] = leaf;
    }
    for (uint32_t i = 0; i < f->n_conditions; i++)
        f->conditions[i].exclude = false;

    uint32_t root;
    int rc = normalise(&b, 0, false, &root);
    if (rc)
        return rc;
    /* an AND of conditions and negated conditions is the plain form */
    const struct cc_query_node *r = &work[root];
    bool plain = r->op == CC_NODE_CONDITION ||
                 (r->op == CC_NODE_NOT && work[r->children[0]].op == CC_NODE_CONDITION);
    if (r->op == CC_NODE_AND) {
        plain = true;
        for (uint32_t i = 0; i < r->n_children && plain; i++) {
            const struct cc_query_node *c = &work[r->children[i]];
            plain = c->op == CC_NODE_CONDITION ||
                    (c->op == CC_NODE_NOT && work[c->children[0]].op == CC_NODE_CONDITION);
        }
    }
    if (plain) {
        uint32_t n_terms = r->op == CC_NODE_AND ? r->n_children : 1;
        for (uint32_t i = 0; i < n_terms; i++) {
            const struct cc_query_node *c = r->op == CC_NODE_AND ? &work[r->children[i]] : r;
            if (c->op == CC_NODE_NOT)
                f->conditions[work[c->children[0]].condition].exclude = true;
        }
        f->n_nodes = 0;
        f->nodes = NULL;
        return 0;
    }
    struct cc_query_node *final = cc_query_alloc(query, b.n * sizeof *final);
    if (!final)
        return CC_ENOMEM;
    struct builder out = {.query = query, .from = NULL, .to = final, .n = 0, .cap = b.n};
    rc = compact(&out, work, root, &root);
    if (rc)
        return rc;
    f->nodes = final;
    f->n_nodes = out.n;
    return 0;
}

/* ---- copying and comparing ---- */

int cc_query_combine_clone(struct cc_query *copy, const struct cc_query_filters *from)
{
    struct cc_query_filters *f = &copy->filters;
    f->nodes = NULL;
    f->n_nodes = 0;
    if (!from->n_nodes)
        return 0;
    f->nodes = cc_query_alloc(copy, from->n_nodes * sizeof *f->nodes);
    if (!f->nodes)
        return CC_ENOMEM;
    for (uint32_t i = 0; i < from->n_nodes; i++) {
        f->nodes[i] = from->nodes[i];
        if (!from->nodes[i].n_children)
            continue;
        size_t bytes = from->nodes[i].n_children * sizeof *f->nodes[i].children;
        f->nodes[i].children = cc_query_alloc(copy, bytes);
        if (!f->nodes[i].children)
            return CC_ENOMEM;
        memcpy(f->nodes[i].children, from->nodes[i].children, bytes);
    }
    f->n_nodes = from->n_nodes;
    return 0;
}

static bool node_equal(const struct cc_query_filters *a, uint32_t x, const struct cc_query_filters *b,
                       uint32_t y)
{
    const struct cc_query_node *m = &a->nodes[x], *n = &b->nodes[y];
    if (m->op != n->op || m->n_children != n->n_children ||
        (m->op == CC_NODE_CONDITION && m->condition != n->condition))
        return false;
    for (uint32_t i = 0; i < m->n_children; i++)
        if (!node_equal(a, m->children[i], b, n->children[i]))
            return false;
    return true;
}

bool cc_query_combine_equal(const struct cc_query_filters *a, const struct cc_query_filters *b)
{
    if (a->n_nodes != b->n_nodes)
        return false;
    return !a->n_nodes || node_equal(a, 0, b, 0);
}

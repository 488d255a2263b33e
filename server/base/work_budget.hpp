// The work one request may make soukd do on data it reads from disk: a
// budget of inflated bytes (index pages and groupcompress blocks), so a
// small hostile file cannot buy seconds of CPU and hundreds of MiB with one
// request (docs/formats/README.md#the-work-budget). The request pipeline
// opens a scope around each request; the format library charges it where
// it inflates.
#pragma once

#include <cstdint>

namespace souk::server {

struct WorkBudget {
    uint64_t max_inflated = 0;  // 0: no budget
    uint64_t inflated = 0;      // charged so far
};

// Makes `budget` the one charged on this thread until the scope ends.
// Scopes nest: the outer budget is back when an inner scope ends.
class BudgetScope {
public:
    explicit BudgetScope(WorkBudget* budget);
    ~BudgetScope();
    BudgetScope(const BudgetScope&) = delete;
    BudgetScope& operator=(const BudgetScope&) = delete;

private:
    WorkBudget* outer_;
};

// Charge `bytes` inflated bytes to this thread's budget: false once it is
// spent (then `max` is set to the budget). Without a scope, true.
bool charge_inflated(uint64_t bytes, uint64_t& max);

}  // namespace souk::server

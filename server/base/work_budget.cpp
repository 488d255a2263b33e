#include "server/base/work_budget.hpp"

namespace souk::server {

namespace {
thread_local WorkBudget* t_budget = nullptr;
}  // namespace

BudgetScope::BudgetScope(WorkBudget* budget) : outer_(t_budget) { t_budget = budget; }

BudgetScope::~BudgetScope() { t_budget = outer_; }

bool charge_inflated(uint64_t bytes, uint64_t& max) {
    WorkBudget* b = t_budget;
    if (!b || b->max_inflated == 0) return true;
    b->inflated += bytes;
    max = b->max_inflated;
    return b->inflated <= b->max_inflated;
}

}  // namespace souk::server

// Every object of every stack, checked as the API server and admission would check it.
import { STACKS, evaluateStack } from "./harness";
import { objectChecks } from "./object-checks";

for (const stack of STACKS) objectChecks(stack, () => evaluateStack(stack));

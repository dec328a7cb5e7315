// RUN: grim-opt --list-passes | %FileCheck %s

// Checks that --list-passes shows each registered grim pass with its
// one-line summary and options (the same words as the pass file's doc).

// CHECK-LABEL: grim passes:
// CHECK: lower-grim-to-bcr{{ +}}lower grim tensor graphs to memref code with bcr sparse products, weights as blob slots
// CHECK-NEXT: option: block=RxC
// CHECK-NEXT: option: order=natural|grouped
// CHECK: bcr-reorder{{ +}}choose the BCR work order (GRIM's BCR-based matrix reorder) for every packed weight
// CHECK-NEXT: option: order=grouped|natural
// CHECK: bcr-vectorize{{ +}}give every product its SIMD width
// CHECK-NEXT: option: vector-width=N
// CHECK: lower-bcr-to-loops{{ +}}lower bcr ops to scf/vector/memref/arith loops that walk the BCRC arrays
// CHECK: upstream MLIR pass

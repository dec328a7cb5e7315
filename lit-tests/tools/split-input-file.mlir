// RUN: not grim-opt %s --split-input-file 2>&1 | %FileCheck %s

// Checks that every failing chunk reports its own line in the whole file.

// CHECK: split-input-file.mlir:[[@LINE+2]]:8: error: 'grim.relu' op result shape must equal the input shape
func.func @first(%a: tensor<4xf32>) -> tensor<3xf32> {
  %y = "grim.relu"(%a) : (tensor<4xf32>) -> tensor<3xf32>
  return %y : tensor<3xf32>
}
// -----
// CHECK: split-input-file.mlir:[[@LINE+2]]:8: error: 'grim.relu' op result shape must equal the input shape
func.func @second(%a: tensor<4xf32>) -> tensor<3xf32> {
  %y = "grim.relu"(%a) : (tensor<4xf32>) -> tensor<3xf32>
  return %y : tensor<3xf32>
}
// -----
// CHECK: split-input-file.mlir:[[@LINE+2]]:8: error: 'grim.relu' op result shape must equal the input shape
func.func @third(%a: tensor<4xf32>) -> tensor<3xf32> {
  %y = "grim.relu"(%a) : (tensor<4xf32>) -> tensor<3xf32>
  return %y : tensor<3xf32>
}
// -----
// CHECK: split-input-file.mlir:[[@LINE+2]]:8: error: 'grim.relu' op result shape must equal the input shape
func.func @fourth(%a: tensor<4xf32>) -> tensor<3xf32> {
  %y = "grim.relu"(%a) : (tensor<4xf32>) -> tensor<3xf32>
  return %y : tensor<3xf32>
}

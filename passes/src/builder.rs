//! A small IR builder over melior for the loop code our lowerings emit.
//!
//! melior's per-op functions return detached operations whose values borrow
//! the block they end up in; lowering code that nests loops three deep
//! drowns in those lifetimes. This builder keeps an insertion point (end of
//! a block, or before an op) and hands out values tied only to the context,
//! which is sound because every value it returns belongs to an op that is
//! already inserted in IR owned by the module being rewritten.

use melior::{
    dialect::arith::CmpiPredicate,
    ir::{
        attribute::{FloatAttribute, IntegerAttribute},
        block::BlockLike,
        operation::{OperationBuilder, OperationLike},
        r#type::{IntegerType, MemRefType},
        Attribute, Block, BlockRef, Identifier, Location, Operation, OperationRef, Region,
        RegionLike, Type, Value, ValueLike,
    },
    Context,
};
use mlir_sys::{MlirBlock, MlirOperation};

/// A value usable anywhere below its definition while the module lives.
pub type V<'c> = Value<'c, 'c>;

/// Erases the block lifetime of a value (see the module doc for why this is sound).
pub fn erase<'c>(value: Value<'c, '_>) -> V<'c> {
    // SAFETY: same raw value; only the borrow marker changes.
    unsafe { Value::from_raw(value.to_raw()) }
}

/// An insertion point plus a location.
#[derive(Clone, Copy)]
pub struct Builder<'c> {
    /// The context every op is created in.
    pub context: &'c Context,
    /// Location given to every op this builder creates.
    pub location: Location<'c>,
    block: MlirBlock,
    before: Option<MlirOperation>,
}

impl<'c> Builder<'c> {
    /// Inserts at the end of `block`.
    pub fn at_end(
        context: &'c Context,
        block: &impl BlockLike<'c, 'c>,
        location: Location<'c>,
    ) -> Self {
        Self {
            context,
            location,
            block: block.to_raw(),
            before: None,
        }
    }

    /// Inserts at the end of a block given as its raw handle.
    fn at_end_raw(context: &'c Context, block: MlirBlock, location: Location<'c>) -> Self {
        Self {
            context,
            location,
            block,
            before: None,
        }
    }

    /// Inserts before `op`, with `op`'s location.
    pub fn before(context: &'c Context, op: OperationRef<'c, '_>) -> Self {
        // SAFETY: an op being rewritten always sits in a block.
        let block = unsafe { mlir_sys::mlirOperationGetBlock(op.to_raw()) };
        Self {
            context,
            location: op.location(),
            block,
            before: Some(op.to_raw()),
        }
    }

    /// The same insertion point with another location.
    pub fn with_location(mut self, location: Location<'c>) -> Self {
        self.location = location;
        self
    }

    fn block_ref(&self) -> BlockRef<'c, 'c> {
        // SAFETY: the block outlives the builder (it is part of the module being built).
        unsafe { BlockRef::from_raw(self.block) }
    }

    /// Inserts `op` at the insertion point.
    pub fn insert(&self, op: Operation<'c>) -> OperationRef<'c, 'c> {
        let block = self.block_ref();
        match self.before {
            // SAFETY: `before` is a live op of `block`.
            Some(anchor) => {
                block.insert_operation_before(unsafe { OperationRef::from_raw(anchor) }, op)
            }
            None => block.append_operation(op),
        }
    }

    /// Inserts `op` and returns its first result.
    pub fn value(&self, op: Operation<'c>) -> V<'c> {
        let op = self.insert(op);
        erase(op.result(0).expect("op has a result").into())
    }

    /// Builds and inserts a generic op; returns its results.
    pub fn op(
        &self,
        name: &str,
        operands: &[V<'c>],
        results: &[Type<'c>],
        attributes: &[(&str, Attribute<'c>)],
    ) -> Vec<V<'c>> {
        let attributes: Vec<_> = attributes
            .iter()
            .map(|(n, a)| (Identifier::new(self.context, n), *a))
            .collect();
        let op = OperationBuilder::new(name, self.location)
            .add_operands(operands)
            .add_results(results)
            .add_attributes(&attributes)
            .build()
            .unwrap_or_else(|error| panic!("building {name}: {error}"));
        let op = self.insert(op);
        op.results().map(|r| erase(r.into())).collect()
    }

    fn infer(&self, name: &str, operands: &[V<'c>]) -> V<'c> {
        let op = OperationBuilder::new(name, self.location)
            .add_operands(operands)
            .enable_result_type_inference()
            .build()
            .unwrap_or_else(|error| panic!("building {name}: {error}"));
        self.value(op)
    }

    /// `index` type.
    pub fn index_type(&self) -> Type<'c> {
        Type::index(self.context)
    }
    /// `iN` type.
    pub fn int_type(&self, bits: u32) -> Type<'c> {
        IntegerType::new(self.context, bits).into()
    }
    /// `f32` type.
    pub fn f32_type(&self) -> Type<'c> {
        Type::float32(self.context)
    }
    /// `vector<N x f32>`.
    pub fn vector_type(&self, lanes: u64) -> Type<'c> {
        Type::vector(&[lanes], self.f32_type())
    }
    /// A static memref type with identity layout.
    pub fn memref_type(&self, shape: &[i64], element: Type<'c>) -> Type<'c> {
        MemRefType::new(element, shape, None, None).into()
    }

    /// `arith.constant` of type index.
    pub fn index(&self, value: i64) -> V<'c> {
        let attribute = IntegerAttribute::new(self.index_type(), value).into();
        self.value(melior::dialect::arith::constant(
            self.context,
            attribute,
            self.location,
        ))
    }
    /// `arith.constant` of an integer type.
    pub fn int(&self, value: i64, bits: u32) -> V<'c> {
        let attribute = IntegerAttribute::new(self.int_type(bits), value).into();
        self.value(melior::dialect::arith::constant(
            self.context,
            attribute,
            self.location,
        ))
    }
    /// `arith.constant` of type f32.
    pub fn f32(&self, value: f64) -> V<'c> {
        let attribute = FloatAttribute::new(self.context, self.f32_type(), value).into();
        self.value(melior::dialect::arith::constant(
            self.context,
            attribute,
            self.location,
        ))
    }

    /// `arith.addi`.
    pub fn addi(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.addi", &[a, b])
    }
    /// `arith.subi`.
    pub fn subi(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.subi", &[a, b])
    }
    /// `arith.muli`.
    pub fn muli(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.muli", &[a, b])
    }
    /// `arith.divui`.
    pub fn divui(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.divui", &[a, b])
    }
    /// `arith.remui`.
    pub fn remui(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.remui", &[a, b])
    }
    /// A signed integer op on indices whose result type is its operands':
    /// `arith.maxsi`, `minsi`, `ceildivsi`, `floordivsi`.
    pub fn signed(&self, name: &str, a: V<'c>, b: V<'c>) -> V<'c> {
        debug_assert!([
            "arith.maxsi",
            "arith.minsi",
            "arith.ceildivsi",
            "arith.floordivsi"
        ]
        .contains(&name));
        self.infer(name, &[a, b])
    }
    /// `arith.select condition, a, b`.
    pub fn select(&self, condition: V<'c>, a: V<'c>, b: V<'c>) -> V<'c> {
        self.op("arith.select", &[condition, a, b], &[a.r#type()], &[])[0]
    }
    /// `arith.minsi`.
    pub fn minsi(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.minsi", &[a, b])
    }
    /// `arith.maxsi`.
    pub fn maxsi(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.maxsi", &[a, b])
    }
    /// `arith.remsi` (the sign of the dividend).
    pub fn remsi(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.remsi", &[a, b])
    }
    /// `arith.minui`.
    pub fn minui(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.minui", &[a, b])
    }
    /// `arith.andi`.
    pub fn andi(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.andi", &[a, b])
    }
    /// `arith.shrui`.
    pub fn shrui(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.shrui", &[a, b])
    }
    /// `arith.addf`.
    pub fn addf(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.addf", &[a, b])
    }
    /// `arith.mulf`.
    pub fn mulf(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.mulf", &[a, b])
    }
    /// `arith.maximumf`.
    pub fn maximumf(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.maximumf", &[a, b])
    }
    /// `arith.minimumf`.
    pub fn minimumf(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.minimumf", &[a, b])
    }
    /// `arith.subf`.
    pub fn subf(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.subf", &[a, b])
    }
    /// `arith.divf`.
    pub fn divf(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.divf", &[a, b])
    }
    /// A unary `math` op on floats whose result type is its operand's
    /// (`math.exp`, `math.sqrt`, ...).
    pub fn math(&self, name: &str, a: V<'c>) -> V<'c> {
        self.infer(name, &[a])
    }
    /// `arith.cmpf` with a predicate: `oge`, `olt`, ...
    pub fn cmpf(
        &self,
        predicate: melior::dialect::arith::CmpfPredicate,
        a: V<'c>,
        b: V<'c>,
    ) -> V<'c> {
        self.value(melior::dialect::arith::cmpf(
            self.context,
            predicate,
            a,
            b,
            self.location,
        ))
    }
    /// `math.fma` (scalar or vector): `a * b + c`.
    pub fn fma(&self, a: V<'c>, b: V<'c>, c: V<'c>) -> V<'c> {
        self.infer("math.fma", &[a, b, c])
    }
    /// `arith.cmpi`.
    pub fn cmpi(&self, predicate: CmpiPredicate, a: V<'c>, b: V<'c>) -> V<'c> {
        self.value(melior::dialect::arith::cmpi(
            self.context,
            predicate,
            a,
            b,
            self.location,
        ))
    }
    /// `arith.index_cast` to index (signed).
    pub fn to_index(&self, value: V<'c>) -> V<'c> {
        self.op("arith.index_cast", &[value], &[self.index_type()], &[])[0]
    }
    /// `arith.index_cast` from index to `iN`.
    pub fn from_index(&self, value: V<'c>, bits: u32) -> V<'c> {
        self.op("arith.index_cast", &[value], &[self.int_type(bits)], &[])[0]
    }
    /// `arith.extui` to `iN`.
    pub fn extui(&self, value: V<'c>, bits: u32) -> V<'c> {
        self.op("arith.extui", &[value], &[self.int_type(bits)], &[])[0]
    }

    /// `memref.load`.
    pub fn load(&self, memref: V<'c>, indices: &[V<'c>]) -> V<'c> {
        self.value(melior::dialect::memref::load(
            memref,
            indices,
            self.location,
        ))
    }
    /// `memref.store`.
    pub fn store(&self, value: V<'c>, memref: V<'c>, indices: &[V<'c>]) {
        self.insert(melior::dialect::memref::store(
            value,
            memref,
            indices,
            self.location,
        ));
    }
    /// `memref.dim`.
    pub fn dim(&self, memref: V<'c>, index: i64) -> V<'c> {
        let index = self.index(index);
        self.op("memref.dim", &[memref, index], &[self.index_type()], &[])[0]
    }
    /// `memref.alloca` of a static shape.
    pub fn alloca(&self, shape: &[i64], element: Type<'c>) -> V<'c> {
        let ty = self.memref_type(shape, element);
        let segments =
            melior::ir::attribute::DenseI32ArrayAttribute::new(self.context, &[0, 0]).into();
        self.op(
            "memref.alloca",
            &[],
            &[ty],
            &[("operandSegmentSizes", segments)],
        )[0]
    }

    /// `memref.alloca` aligned to `bytes` (a cache line, so vector loads
    /// from it never straddle two lines).
    pub fn alloca_aligned(&self, shape: &[i64], element: Type<'c>, bytes: i64) -> V<'c> {
        let ty = self.memref_type(shape, element);
        let segments =
            melior::ir::attribute::DenseI32ArrayAttribute::new(self.context, &[0, 0]).into();
        let alignment = IntegerAttribute::new(self.int_type(64), bytes).into();
        self.op(
            "memref.alloca",
            &[],
            &[ty],
            &[("operandSegmentSizes", segments), ("alignment", alignment)],
        )[0]
    }
    /// `memref.view` of an i8 buffer at `byte_shift`, with `sizes` for the dynamic dimensions.
    pub fn view(&self, buffer: V<'c>, byte_shift: V<'c>, sizes: &[V<'c>], ty: Type<'c>) -> V<'c> {
        let mut operands = vec![buffer, byte_shift];
        operands.extend_from_slice(sizes);
        self.op("memref.view", &operands, &[ty], &[])[0]
    }
    /// `memref.copy` (same shapes, contiguous).
    pub fn copy(&self, source: V<'c>, target: V<'c>) {
        self.op("memref.copy", &[source, target], &[], &[]);
    }

    /// `vector.load` of `lanes` f32.
    pub fn vload(&self, memref: V<'c>, indices: &[V<'c>], lanes: u64) -> V<'c> {
        let mut operands = vec![memref];
        operands.extend_from_slice(indices);
        self.op("vector.load", &operands, &[self.vector_type(lanes)], &[])[0]
    }
    /// `vector.store`.
    pub fn vstore(&self, value: V<'c>, memref: V<'c>, indices: &[V<'c>]) {
        let mut operands = vec![value, memref];
        operands.extend_from_slice(indices);
        self.op("vector.store", &operands, &[], &[]);
    }
    /// `vector.shuffle` of two f32 vectors of one length by `mask`.
    pub fn shuffle(&self, a: V<'c>, b: V<'c>, mask: &[i64]) -> V<'c> {
        let mask_attr =
            melior::ir::attribute::DenseI64ArrayAttribute::new(self.context, mask).into();
        let ty = self.vector_type(mask.len() as u64);
        self.op("vector.shuffle", &[a, b], &[ty], &[("mask", mask_attr)])[0]
    }
    /// `memref.prefetch` for reading into every cache level.
    pub fn prefetch(&self, memref: V<'c>, indices: &[V<'c>]) {
        let mut operands = vec![memref];
        operands.extend_from_slice(indices);
        let attributes = [
            (
                "isWrite",
                Attribute::parse(self.context, "false").expect("bool"),
            ),
            (
                "localityHint",
                Attribute::parse(self.context, "3 : i32").expect("i32"),
            ),
            (
                "isDataCache",
                Attribute::parse(self.context, "true").expect("bool"),
            ),
        ];
        self.op("memref.prefetch", &operands, &[], &attributes);
    }
    /// `vector.broadcast` of a scalar f32.
    pub fn broadcast(&self, scalar: V<'c>, lanes: u64) -> V<'c> {
        self.op(
            "vector.broadcast",
            &[scalar],
            &[self.vector_type(lanes)],
            &[],
        )[0]
    }
    /// `vector.fma`: `a * b + c`.
    pub fn vfma(&self, a: V<'c>, b: V<'c>, c: V<'c>) -> V<'c> {
        self.op("vector.fma", &[a, b, c], &[c.r#type()], &[])[0]
    }

    /// `scf.for lo to hi step step iter_args(inits)`; `body` gets a builder
    /// at the end of the loop body, the induction variable and the iteration
    /// values, and returns the values to yield. Returns the loop's results.
    pub fn for_loop(
        &self,
        lo: V<'c>,
        hi: V<'c>,
        step: V<'c>,
        inits: &[V<'c>],
        body: impl FnOnce(&Builder<'c>, V<'c>, &[V<'c>]) -> Vec<V<'c>>,
    ) -> Vec<V<'c>> {
        self.for_loop_with(lo, hi, step, inits, &[], body)
    }

    /// [`Builder::for_loop`] with discardable attributes on the `scf.for`.
    pub fn for_loop_with(
        &self,
        lo: V<'c>,
        hi: V<'c>,
        step: V<'c>,
        inits: &[V<'c>],
        attributes: &[(&str, Attribute<'c>)],
        body: impl FnOnce(&Builder<'c>, V<'c>, &[V<'c>]) -> Vec<V<'c>>,
    ) -> Vec<V<'c>> {
        let mut arguments = vec![(self.index_type(), self.location)];
        arguments.extend(inits.iter().map(|v| (v.r#type(), self.location)));
        let block = Block::new(&arguments);
        let inner = Builder::at_end_raw(self.context, block.to_raw(), self.location);
        let iv = erase(block.argument(0).expect("induction variable").into());
        let args: Vec<V<'c>> = (0..inits.len())
            .map(|i| erase(block.argument(i + 1).expect("iter arg").into()))
            .collect();
        let yielded = body(&inner, iv, &args);
        inner.insert(melior::dialect::scf::r#yield(&yielded, self.location));
        let region = Region::new();
        region.append_block(block);
        let mut operands = vec![lo, hi, step];
        operands.extend_from_slice(inits);
        let types: Vec<Type<'c>> = inits.iter().map(|v| v.r#type()).collect();
        let attributes: Vec<_> = attributes
            .iter()
            .map(|(n, a)| (Identifier::new(self.context, n), *a))
            .collect();
        let op = OperationBuilder::new("scf.for", self.location)
            .add_operands(&operands)
            .add_results(&types)
            .add_attributes(&attributes)
            .add_regions([region])
            .build()
            .expect("scf.for");
        let op = self.insert(op);
        op.results().map(|r| erase(r.into())).collect()
    }

    /// `scf.for` over constant bounds.
    pub fn for_range(
        &self,
        lo: i64,
        hi: i64,
        step: i64,
        inits: &[V<'c>],
        body: impl FnOnce(&Builder<'c>, V<'c>, &[V<'c>]) -> Vec<V<'c>>,
    ) -> Vec<V<'c>> {
        let (lo, hi, step) = (self.index(lo), self.index(hi), self.index(step));
        self.for_loop(lo, hi, step, inits, body)
    }

    /// `scf.while` over `inits`: `condition` gets the carried values and
    /// returns whether to go on; `body` returns the next values. Returns the
    /// final values.
    pub fn while_loop(
        &self,
        inits: &[V<'c>],
        condition: impl FnOnce(&Builder<'c>, &[V<'c>]) -> V<'c>,
        body: impl FnOnce(&Builder<'c>, &[V<'c>]) -> Vec<V<'c>>,
    ) -> Vec<V<'c>> {
        let types: Vec<Type<'c>> = inits.iter().map(|v| v.r#type()).collect();
        let arguments: Vec<_> = types.iter().map(|t| (*t, self.location)).collect();
        let region_for = |build: &mut dyn FnMut(&Builder<'c>, &[V<'c>])| {
            let block = Block::new(&arguments);
            let inner = Builder::at_end_raw(self.context, block.to_raw(), self.location);
            let values: Vec<V<'c>> = (0..types.len())
                .map(|i| erase(block.argument(i).expect("carried value").into()))
                .collect();
            build(&inner, &values);
            let region = Region::new();
            region.append_block(block);
            region
        };
        let mut condition = Some(condition);
        let before = region_for(&mut |b, values| {
            let go_on = (condition.take().expect("built once"))(b, values);
            let mut operands = vec![go_on];
            operands.extend_from_slice(values);
            b.op("scf.condition", &operands, &[], &[]);
        });
        let mut body = Some(body);
        let after = region_for(&mut |b, values| {
            let next = (body.take().expect("built once"))(b, values);
            b.insert(melior::dialect::scf::r#yield(&next, self.location));
        });
        let op = OperationBuilder::new("scf.while", self.location)
            .add_operands(inits)
            .add_results(&types)
            .add_regions([before, after])
            .build()
            .expect("scf.while");
        let op = self.insert(op);
        op.results().map(|r| erase(r.into())).collect()
    }

    /// `arith.ori`.
    pub fn ori(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.ori", &[a, b])
    }
    /// `arith.shli`.
    pub fn shli(&self, a: V<'c>, b: V<'c>) -> V<'c> {
        self.infer("arith.shli", &[a, b])
    }
    /// `math.cttz` (count trailing zeros).
    pub fn cttz(&self, a: V<'c>) -> V<'c> {
        self.infer("math.cttz", &[a])
    }
    /// `math.ctpop` (count set bits).
    pub fn ctpop(&self, a: V<'c>) -> V<'c> {
        self.infer("math.ctpop", &[a])
    }

    /// `scf.if` with results of `types`; each branch returns its yields.
    pub fn if_else(
        &self,
        condition: V<'c>,
        types: &[Type<'c>],
        then_branch: impl FnOnce(&Builder<'c>) -> Vec<V<'c>>,
        else_branch: impl FnOnce(&Builder<'c>) -> Vec<V<'c>>,
    ) -> Vec<V<'c>> {
        let make = |branch: &dyn Fn(&Builder<'c>) -> Vec<V<'c>>| {
            let block = Block::new(&[]);
            let inner = Builder::at_end_raw(self.context, block.to_raw(), self.location);
            let yielded = branch(&inner);
            inner.insert(melior::dialect::scf::r#yield(&yielded, self.location));
            let region = Region::new();
            region.append_block(block);
            region
        };
        let then_branch = std::cell::RefCell::new(Some(then_branch));
        let else_branch = std::cell::RefCell::new(Some(else_branch));
        let then_region = make(&|b| {
            then_branch
                .borrow_mut()
                .take()
                .map(|f| f(b))
                .unwrap_or_default()
        });
        let else_region = make(&|b| {
            else_branch
                .borrow_mut()
                .take()
                .map(|f| f(b))
                .unwrap_or_default()
        });
        let op =
            melior::dialect::scf::r#if(condition, types, then_region, else_region, self.location);
        let op = self.insert(op);
        op.results().map(|r| erase(r.into())).collect()
    }
}

/// Erases `op` from its block (it must have no remaining uses).
pub fn erase_op(op: OperationRef) {
    // SAFETY: the op is live, in a block, and its results are unused.
    unsafe { mlir_sys::mlirOperationDestroy(op.to_raw()) }
}

/// Replaces every use of `old` with `new`.
pub fn replace_all_uses(old: Value, new: Value) {
    // SAFETY: both values are live and of the same type.
    unsafe { mlir_sys::mlirValueReplaceAllUsesOfWith(old.to_raw(), new.to_raw()) }
}
